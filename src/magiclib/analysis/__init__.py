"""The correlation protocols behind RQ1-RQ4, with intervals and permutation tests (numpy/pandas/scipy/statsmodels).

Every function takes a scores table (one row per mixture, scale, stage, seed and benchmark; ours from
`magic`, or a user's own with the same columns) and returns a tidy DataFrame a chapter can chart directly.

    tables       validation, orders, the seed-mean per mixture          (mixture_means, mixture_matrix)
    stats        correlation + permutation p (exact for independence) + Fisher/bootstrap CIs (correlate)
    dependent    Steiger's Z and Zou's interval for dependent correlations
    transfer     RQ1: cross-stage transfer per benchmark and category
    predictors   RQ2: predictor ranking, decision accuracy, sign flips between scales
    scale        RQ3: scale differences, coherence, cross-benchmark matrices and their similarity
    calibration  RQ4: r_align on both axes, alignment persistence, ECE/Brier summaries
    effects      web source and code share effects, the reversal check
    noise        between-seed vs between-mixture spread
    items        the per-item schema (any scorer), reading parquet/CSV, per-item metric cubes
    crossfit     item-split cross-fitting, reliability, noise ceiling, corrected r (item noise)
    components   mixture/seed/item variance components, mixture-component r and its test (seed noise)
    audit        per benchmark: signal above its noise floor?, then transfer; verdicts and planning
    multitest    Holm and Benjamini-Hochberg columns for any table with p-values
    paper        the paper's reported numbers, with provenance
    synthetic    a synthetic scores table with planted structure (tests, method pages)
"""

from .audit import planning_table, transfer_audit
from .calibration import alignment, alignment_by_benchmark, alignment_persistence, calibration_summary
from .components import mixture_transfer, variance_components
from .crossfit import crossfit
from .dependent import mean_steiger_z, steiger_z, zou_interval
from .effects import code_share_effects, pooled_effects, reversal_check, web_source_effects
from .items import ITEM_METRICS, per_item, read_items
from .multitest import adjust_pvalues
from .noise import signal_to_noise
from .paper import paper_numbers
from .predictors import decision_accuracy, predictor_ranking, sign_flips
from .scale import (
    category_scale_differences,
    coherence_means,
    coherence_pairs,
    cross_benchmark_matrix,
    matrix_similarity,
    scale_differences,
)
from .stats import correlate, correlation, mean_correlation, permutation_pvalue
from .synthetic import item_cube, make_items, make_scores
from .tables import CATEGORIES, METRICS, mixture_matrix, mixture_means
from .transfer import category_transfer, transfer_table

__all__ = [
    "variance_components",
    "transfer_audit",
    "read_items",
    "planning_table",
    "per_item",
    "mixture_transfer",
    "make_items",
    "item_cube",
    "crossfit",
    "ITEM_METRICS",
    "CATEGORIES",
    "METRICS",
    "adjust_pvalues",
    "alignment",
    "alignment_by_benchmark",
    "alignment_persistence",
    "calibration_summary",
    "category_scale_differences",
    "category_transfer",
    "code_share_effects",
    "coherence_means",
    "coherence_pairs",
    "correlate",
    "correlation",
    "cross_benchmark_matrix",
    "decision_accuracy",
    "make_scores",
    "matrix_similarity",
    "mean_correlation",
    "mean_steiger_z",
    "mixture_matrix",
    "mixture_means",
    "paper_numbers",
    "permutation_pvalue",
    "pooled_effects",
    "predictor_ranking",
    "reversal_check",
    "scale_differences",
    "sign_flips",
    "signal_to_noise",
    "steiger_z",
    "transfer_table",
    "web_source_effects",
    "zou_interval",
]
