"""Speed of the exact permutation p-values: ours against scipy's, and the joint null of a category mean.

Every correlation of the analysis carries an exact p over all 9! = 362,880 pairings of the mixtures, so
this is the inner loop of the book's chapters. Prints seconds per call and the ratio for:

- one Pearson p: `scipy.stats.permutation_test` (exact, vectorised) against `stats.permutation_pvalue`;
- one Spearman p, where ours reuses one cached null for every untied vector;
- the joint null of a 7-benchmark mean: one permutation null per row, averaged, against the folded
  weight table of `stats.permutation_null` (one gather whatever the number of rows);
- and, for scale, the whole transfer table of a synthetic 20-benchmark study (3 metrics x 3 methods).

    python bench/analysis_permutation.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import stats as sps

from magiclib.analysis import make_scores, transfer_table
from magiclib.analysis import stats as ours


def seconds(function, repeats: int) -> float:
    """Median wall time of `repeats` calls, after one untimed call (builds caches)."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def scipy_p(x, y, ranks: bool) -> float:
    y_fixed = sps.rankdata(y) if ranks else y

    def statistic(values, axis=-1):
        values = sps.rankdata(values, axis=axis) if ranks else values
        return sps.pearsonr(values, np.broadcast_to(y_fixed, values.shape), axis=axis).statistic

    return sps.permutation_test(
        (x,), statistic, permutation_type="pairings", vectorized=True, n_resamples=np.inf
    ).pvalue


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    repeats = parser.parse_args().repeats
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=9), rng.normal(size=9)
    rows_x, rows_y = rng.normal(size=(7, 9)), rng.normal(size=(7, 9))
    orders, _ = ours.pairings(9)

    cases = [
        ("Pearson p, n = 9", lambda: scipy_p(x, y, ranks=False), lambda: ours.permutation_pvalue(x, y)),
        (
            "Spearman p, n = 9",
            lambda: scipy_p(x, y, ranks=True),
            lambda: ours.permutation_pvalue(x, y + 1, "spearman"),
        ),
        (
            "joint null of a 7-row mean",
            lambda: np.mean(
                [ours.permutation_null(a, b, "pearson", orders) for a, b in zip(rows_x, rows_y, strict=True)],
                axis=0,
            ),
            lambda: ours.permutation_null(rows_x, rows_y, "pearson", orders),
        ),
    ]
    print(f"{'case':<30} {'baseline s':>11} {'ours s':>9} {'ratio':>8}")
    for name, baseline, candidate in cases:
        base, mine = seconds(baseline, repeats), seconds(candidate, repeats)
        print(f"{name:<30} {base:>11.4f} {mine:>9.4f} {base / mine:>7.1f}x")
    assert np.isclose(scipy_p(x, y, ranks=False), ours.permutation_pvalue(x, y))

    scores = make_scores()
    start = time.perf_counter()
    table = transfer_table(scores)
    print(
        f"transfer_table: {len(table)} correlations (exact p + 9,999 bootstrap resamples each) "
        f"in {time.perf_counter() - start:.1f} s"
    )


if __name__ == "__main__":
    main()
