"""A synthetic scores table in the study's schema, for tests and for showing a protocol on known structure.

`make_scores` gives plausible random values (fixed seed): each benchmark has a latent mixture effect at PT
that carries over to SFT with a benchmark-specific strength, plus seed noise. Tests overwrite columns to
plant exact structure (`plant_sft`: a perfect transfer, a reversal) and check that the analysis finds it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import BadValue

# The study's 20 benchmarks and their categories (see ../shared/DESIGN.md).
BENCHMARKS = {
    **dict.fromkeys(
        ["hellaswag", "piqa", "copa", "winogrande", "social_iqa", "commonsense_qa", "boolq"], "commonsense"
    ),
    **dict.fromkeys(["arc_easy", "arc_challenge", "sciq", "openbookqa"], "science"),
    **dict.fromkeys(["mnli", "qnli", "rte", "cb"], "nli"),
    **dict.fromkeys(["wic", "wsc", "multirc", "mrpc", "sst2"], "semantic"),
}
WEB_SOURCES = ("V1", "V2", "V3")
CODE_SHARES = {"P0": 0.25, "P1": 0.35, "P2": 0.45}
SCALES = {"mini-s": 1_000_000, "mini-l": 4_000_000}


def make_scores(
    scales: Mapping[str, int] = SCALES,
    benchmarks: Mapping[str, str] = BENCHMARKS,
    seeds: Sequence[int] = (0,),
    n_items: int = 200,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per (mixture, scale, stage, seed, benchmark) with every column the study runner writes.

    scales: name -> n_params; benchmarks: name -> category; seeds: the training seeds (seed noise);
    seed: the generator's seed (same seed, same table).
    """
    rng = np.random.default_rng(seed)
    mixtures = [(f"{w}-{p}", w, p, share) for w in WEB_SOURCES for p, share in CODE_SHARES.items()]
    rows = []
    for scale, n_params in scales.items():
        for benchmark, category in benchmarks.items():
            base = rng.uniform(0.3, 0.6)
            effect = rng.normal(size=len(mixtures))
            carry = rng.uniform(-0.5, 0.95)  # how much of the PT mixture effect survives SFT
            after = carry * effect + np.sqrt(1 - carry**2) * rng.normal(size=len(mixtures))
            for stage, signal, lift in (("PT", effect, 0.0), ("SFT", after, 0.02)):
                for train_seed in seeds:
                    accuracy = np.clip(
                        base + lift + 0.03 * signal + rng.normal(0, 0.005, len(mixtures)), 0, 1
                    )
                    confidence = np.clip(0.35 + 0.5 * accuracy + rng.normal(0, 0.01, len(mixtures)), 0, 1)
                    for (mixture, web, proportions, share), acc, conf in zip(
                        mixtures, accuracy, confidence, strict=True
                    ):
                        ece = abs(conf - acc) + 0.01
                        rows.append(
                            {
                                "mixture": mixture,
                                "web_source": web,
                                "proportions": proportions,
                                "code_share": share,
                                "scale": scale,
                                "n_params": n_params,
                                "stage": stage,
                                "seed": train_seed,
                                "benchmark": benchmark,
                                "category": category,
                                "n": n_items,
                                "score_rule": "acc",
                                "acc": acc,
                                "acc_norm": min(1.0, acc + 0.01),
                                "accuracy": acc,
                                "accuracy_se": np.sqrt(acc * (1 - acc) / n_items),
                                "confidence": conf,
                                "confidence_se": 0.01,
                                "gold_prob": 0.05 + 0.8 * acc,
                                "gold_prob_se": 0.01,
                                "ece": ece,
                                "ece_15": ece + 0.005,
                                "brier": 1 - 0.8 * acc,
                            }
                        )
    return pd.DataFrame(rows)


def plant_sft(
    scores: pd.DataFrame, benchmark: str, metric: str, from_pt: Callable[[np.ndarray], np.ndarray]
) -> pd.DataFrame:
    """A copy of `scores` whose SFT `metric` of `benchmark` is from_pt(its PT values), mixture by mixture.

    E.g. from_pt=lambda pt: 0.5 * pt + 0.3 plants a perfect transfer, lambda pt: 1 - pt a perfect reversal.
    """
    if benchmark not in set(scores["benchmark"]):
        raise BadValue(
            f"benchmark {benchmark!r} is not in the table; pick one of {sorted(set(scores['benchmark']))}"
        )
    scores = scores.copy()
    keys = ["scale", "mixture", "seed"]
    pt = scores[(scores["benchmark"] == benchmark) & (scores["stage"] == "PT")].set_index(keys)[metric]
    sft = (scores["benchmark"] == benchmark) & (scores["stage"] == "SFT")
    scores.loc[sft, metric] = from_pt(pt.reindex(pd.MultiIndex.from_frame(scores.loc[sft, keys])).to_numpy())
    return scores


def item_cube(
    n_mixtures: int = 9,
    n_seeds: int = 1,
    n_items: int = 50,
    *,
    sd_mixture: float = 1.0,
    rho_mixture: float = 0.8,
    sd_seed: float = 0.0,
    rho_seed: float = 0.9,
    sd_item: float = 3.0,
    rho_item: float = 0.9,
    sd_difficulty: float = 1.0,
    seed: int | np.random.Generator = 0,
) -> np.ndarray:
    """Per-item values[stage (PT, SFT), mixture, seed, item] with planted mixture, seed and item noise.

    value = difficulty[item] + mixture effect + seed effect + item noise, each effect drawn per stage with
    the given SD, and SFT's = rho * PT's + sqrt(1 - rho^2) * fresh (so each persists with its rho): the
    mixture effect per mixture, the seed effect per (mixture, seed) run (a model's idiosyncrasy, carried into
    its SFT child), the item noise per (run, item) (which items that model happens to get right). Difficulty
    is shared by every run and both stages. Across a population of mixtures the mixture components of PT
    and SFT correlate at rho_mixture: what the corrected (no seed noise) and mixture-component estimates
    should recover.
    """
    rng = np.random.default_rng(seed)

    def persisting(sd: float, rho: float, shape: tuple[int, ...]) -> np.ndarray:
        pt, fresh = rng.normal(size=shape), rng.normal(size=shape)
        return sd * np.stack([pt, rho * pt + np.sqrt(1 - rho**2) * fresh])

    k, s, n = n_mixtures, n_seeds, n_items
    return (
        sd_difficulty * rng.normal(size=n)
        + persisting(sd_mixture, rho_mixture, (k, 1, 1))
        + persisting(sd_seed, rho_seed, (k, s, 1))
        + persisting(sd_item, rho_item, (k, s, n))
    )


def make_items(
    scales: Mapping[str, int] = {"mini-s": 1_000_000},  # noqa: B006 (read only)
    benchmarks: Sequence[str] = ("hellaswag", "arc_easy"),
    seeds: Sequence[int] = (0, 1, 2),
    n_items: int = 40,
    n_choices: int = 4,
    seed: int = 0,
    **cube,
) -> pd.DataFrame:
    """An items table (one row per run, benchmark, item and choice) in the schema of `analysis.items`.

    Each (scale, benchmark) gets its own `item_cube(**cube)` d[stage, mixture, seed, item], planted as the
    gold choice's log-likelihood per character: gold scores -2 + d / 10 nats per character, each wrong choice
    -2 + u / 10 with u ~ N(0, 1) fixed per item and choice, so gold_ll_char is the cube (scaled) exactly and
    accuracy is whether gold beats every wrong choice.
    """
    rng = np.random.default_rng(seed)
    mixtures = [(f"{w}-{p}", w, p, share) for w in WEB_SOURCES for p, share in CODE_SHARES.items()]
    frames = []
    for scale, n_params in scales.items():
        for benchmark in benchmarks:
            d = item_cube(len(mixtures), len(seeds), n_items, seed=rng, **cube)
            chars = rng.integers(8, 40, size=(n_items, n_choices))
            wrong = -2 + rng.normal(size=(n_items, n_choices)) / 10
            gold = rng.integers(0, n_choices, size=n_items)
            for stage_index, stage in enumerate(("PT", "SFT")):
                for m, (mixture, web, proportions, share) in enumerate(mixtures):
                    for s, train_seed in enumerate(seeds):
                        per_char = wrong.copy()
                        per_char[np.arange(n_items), gold] = -2 + d[stage_index, m, s] / 10
                        frames.append(pd.DataFrame({
                            "mixture": mixture, "web_source": web, "proportions": proportions,
                            "code_share": share, "scale": scale, "n_params": n_params, "stage": stage,
                            "seed": train_seed, "benchmark": benchmark,
                            "item": np.repeat([str(i) for i in range(n_items)], n_choices),
                            "choice": np.tile(np.arange(n_choices), n_items),
                            "loglik": (per_char * chars).ravel(), "n_chars": chars.ravel(),
                            "n_tokens": (chars.ravel() + 3) // 4, "gold": np.repeat(gold, n_choices),
                        }))
    return pd.concat(frames, ignore_index=True)
