"""Signal to noise: are the differences between mixtures larger than the differences between seeds?

The paper trained one model per mixture, so a mixture ranking could be seed noise. With several seeds
per mixture (config `seeds`), every protocol here uses the seed-mean, and this table says per benchmark
how far the mixtures are apart compared with how far seeds of one mixture are apart. The item-sampling
error (the scorer's standard error over benchmark items) is a second noise floor that needs one seed only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .tables import CATEGORIES, KEYS, as_tuple, check_columns, check_metric, mixture_means, sort_like

METRICS_WITH_SE = ("accuracy", "confidence", "gold_prob")


def signal_to_noise(
    scores: pd.DataFrame,
    metrics: str | Sequence[str] = METRICS_WITH_SE,
    categories: Sequence[str] = CATEGORIES,
) -> pd.DataFrame:
    """Between-mixture SD against between-seed SD and item standard error, per (scale, stage, benchmark).

    between_mixture_sd: SD (ddof 1) of the seed-means across mixtures. between_seed_sd: the pooled
    within-mixture SD across seeds, sqrt(mean over mixtures of the seed variance); NaN with one seed.
    item_se: root mean square of `<metric>_se` when the table has it. snr_seed and snr_items divide the
    first by the other two; below about 1 the mixture ranking is mostly noise.
    Columns: scale, stage, category, benchmark, metric, n_mixtures, n_seeds, between_mixture_sd,
    between_seed_sd, item_se, snr_seed, snr_items.
    """
    check_columns(scores, KEYS + ["mixture", "seed"], "signal_to_noise")
    frames = []
    for metric in as_tuple(metrics):
        check_metric(scores, metric)
        keys = KEYS + ["mixture"]
        seed_variance = scores.groupby(keys, sort=False)[metric].var(ddof=1).rename("seed_var")
        means = mixture_means(scores, metric, categories).set_index(keys).join(seed_variance)
        if f"{metric}_se" in scores.columns:
            means = means.join(
                scores.groupby(keys, sort=False)[f"{metric}_se"]
                .apply(lambda se: np.sqrt(np.mean(se**2)))
                .rename("item_se")
            )
        else:
            means["item_se"] = np.nan
        table = (
            means.groupby(KEYS, sort=False)
            .agg(
                n_mixtures=("value", "size"),
                n_seeds=("n_seeds", "min"),
                between_mixture_sd=("value", "std"),
                seed_var=("seed_var", "mean"),
                item_se=("item_se", lambda se: np.sqrt(np.mean(se**2))),
            )
            .reset_index()
        )
        table["between_seed_sd"] = np.sqrt(table.pop("seed_var"))
        with np.errstate(divide="ignore", invalid="ignore"):
            table["snr_seed"] = table["between_mixture_sd"] / table["between_seed_sd"]
            table["snr_items"] = table["between_mixture_sd"] / table["item_se"]
        frames.append(table.assign(metric=metric))
    columns = KEYS + [
        "metric",
        "n_mixtures",
        "n_seeds",
        "between_mixture_sd",
        "between_seed_sd",
        "item_se",
        "snr_seed",
        "snr_items",
    ]
    return sort_like(pd.concat(frames, ignore_index=True), scores, categories)[columns]
