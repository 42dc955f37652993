"""Coverage of the correlation intervals and type-I error of the tests, at n = 9 mixtures, old vs new.

Repeated draws of 9 (x, y) pairs from known populations, printed side by side in one run (same draws for
every method):

1. coverage of the nominal 95% interval of a Pearson r: the old percentile bootstrap (degenerate
   resamples dropped; `stats.bootstrap_ci`), the new Fisher-z interval (`stats.fisher_ci`, what
   `correlate` reports as ci_low/ci_high for Pearson) and BCa (`scipy.stats.bootstrap`) for reference,
   for normal, heavy-tailed (bivariate t, 3 df) and tied binomial scores (accuracy on 50 items, as in
   the mini study: mid-range, and near the floor where most mixtures tie), and for rho in {0, 0.5, 0.8, 0.95}; plus the share of draws `ci_reliable` flags and the
   coverage among the rest. Spearman and Kendall: their percentile bootstrap (kept) beside Fisher z;
2. type-I error at alpha = .05 of the scale-difference decision, H0: rho_small = rho_large on the same 9
   mixtures (cross-scale correlation c; normal, t with 3 df, and 50-item binomial scores): the old `p_boot` of the paired bootstrap against Steiger's Z
   (the new `p`) and Zou's interval excluding 0; and for a category mean of 4 benchmarks, the old
   `p_boot` against `dependent.mean_steiger_z`;
3. type-I error of the exact permutation test of r at rho = 0: independent normal pairs, and uncorrelated
   but dependent pairs (bivariate t, a shared heavy-tailed scale), where "exact" no longer holds.

    python bench/analysis_intervals.py [--reps 2000] [--n-boot 1999]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from scipy import stats as sps
from tqdm.auto import tqdm

from magiclib.analysis import stats
from magiclib.analysis.dependent import mean_steiger_z, steiger_z, zou_interval
from magiclib.analysis.scale import _paired_difference

N = 9
RHOS = (0.0, 0.5, 0.8, 0.95)
DISTRIBUTIONS = ("normal", "t3", "binomial50", "floor50")


def draw(rng, distribution: str, R: np.ndarray, size: int) -> np.ndarray:
    """`size` samples of N rows of the variables with correlation matrix R: shape (size, variables, N)."""
    z = rng.multivariate_normal(np.zeros(len(R)), R, size=(size, N))  # (size, N, variables)
    if distribution == "t3":  # one chi-square scale per row: uncorrelated at rho = 0 but dependent
        z = z / np.sqrt(rng.chisquare(3, size=(size, N, 1)) / 3)
    if distribution == "binomial50":  # 50-item accuracy whose mixture signal is about 2x the item noise
        z = rng.binomial(50, np.clip(0.4 + 0.12 * z, 0, 1)) / 50
    if distribution == "floor50":  # 50-item accuracy near the floor: counts of 0-4, heavily tied
        z = rng.binomial(50, np.clip(0.03 + 0.02 * z, 0, 1)) / 50
    return np.moveaxis(z, -1, 1)


def population_rho(distribution: str, rho: float, method: str = "pearson") -> float:
    """The population coefficient the interval should cover."""
    if distribution in ("normal", "t3") and method == "pearson":
        return rho  # the t's scale matrix is its correlation matrix (3 df: finite variance)
    if distribution == "normal":
        return {"spearman": 6 / np.pi * np.arcsin(rho / 2), "kendall": 2 / np.pi * np.arcsin(rho)}[method]
    big = draw(np.random.default_rng(99), distribution, np.array([[1, rho], [rho, 1]]), 200_000 // N)
    x, y = big[:, 0].ravel(), big[:, 1].ravel()
    return float(np.corrcoef(x, y)[0, 1])


def bca(x, y, method: str, n_boot: int) -> tuple[float, float]:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        result = sps.bootstrap(
            (x, y), lambda a, b, axis=-1: stats.correlation(a, b, method), paired=True, vectorized=True,
            n_resamples=n_boot, method="BCa", random_state=0,
        )
    return result.confidence_interval.low, result.confidence_interval.high


def inside(low, high, truth) -> float:
    return float(low <= truth <= high) if np.isfinite(low) and np.isfinite(high) else 0.0


def coverage(reps: int, n_boot: int, seed: int) -> None:
    print(f"\n1. Coverage of nominal 95% intervals, n = {N}, {reps} draws per row "
          f"(Monte Carlo s.e. about {100 * np.sqrt(0.95 * 0.05 / reps):.1f} points; an undefined interval "
          "counts as not covering)")
    header = (f"{'method':9} {'distribution':12} {'rho':>5} {'true':>6} | {'old: pct boot':>13} "
              f"{'new: Fisher z':>13} {'BCa':>6} | {'flagged':>7} {'new, reliable':>13}")
    print(header)
    print("-" * len(header))
    rng = np.random.default_rng(seed)
    cases = [("pearson", d, rho) for d in DISTRIBUTIONS for rho in RHOS]
    cases += [(m, "normal", rho) for m in ("spearman", "kendall") for rho in RHOS]
    for method, distribution, rho in tqdm(cases, desc="coverage", leave=False):
        truth = population_rho(distribution, rho, method)
        samples = draw(rng, distribution, np.array([[1, rho], [rho, 1]]), reps)
        old, new, ref, fisher, flagged, reliable_hits = [], [], [], [], 0, []
        for x, y in samples:
            if x.max() == x.min() or y.max() == y.min():
                continue  # no correlation at all: neither interval exists
            r = float(stats.correlation(x, y, method))
            boot_low, boot_high, dropped = stats.bootstrap_ci(x, y, method, n_boot=n_boot)
            fisher_low, fisher_high = stats.fisher_ci(r, N, method)
            if stats.CI_METHODS[method] == "fisher-z":
                low, high = fisher_low, fisher_high
            else:  # the new rule for rank methods keeps the bootstrap but leaves |r| = 1 undefined
                low, high = (boot_low, boot_high) if abs(r) < 1 else (np.nan, np.nan)
            fisher.append(inside(fisher_low, fisher_high, truth))
            old.append(inside(boot_low, boot_high, truth))
            new.append(inside(low, high, truth))
            ref.append(inside(*bca(x, y, method, n_boot), truth) if method == "pearson" else np.nan)
            if stats.interval_reliable(r, low, high, dropped, n_boot):
                reliable_hits.append(new[-1])
            else:
                flagged += 1
        shown_ref = f"{np.nanmean(ref):6.1%}" if method == "pearson" else f"{'-':>6}"
        # Rank methods: the kept bootstrap, with the Fisher z (Fieller variance) interval in brackets.
        shown_new = f"{np.mean(new):13.1%}" if method == "pearson" else f"{np.mean(new):.1%} (F {np.mean(fisher):.0%})"
        print(f"{method:9} {distribution:12} {rho:5.2f} {truth:6.3f} | {np.mean(old):13.1%} {shown_new:>13} "
              f"{shown_ref} | {flagged / len(old):7.1%} {np.mean(reliable_hits) if reliable_hits else np.nan:13.1%}")


def four_variables(rho: float, c: float) -> np.ndarray:
    """Correlations of (PT_s, SFT_s, PT_l, SFT_l): rho within each scale, c between scales at one stage."""
    return np.array([[1, rho, c, rho * c], [rho, 1, rho * c, c], [c, rho * c, 1, rho], [rho * c, c, rho, 1]])


def type_one(reps: int, n_boot: int, seed: int) -> None:
    print(f"\n2. Type-I error at alpha = .05 of the scale-difference decision (H0: rho_small = rho_large), "
          f"n = {N}, {reps} draws per row (s.e. about {100 * np.sqrt(0.05 * 0.95 / reps):.1f} points)")
    header = (f"{'contrast':10} {'distribution':12} {'rho':>5} {'c':>5} | {'old: p_boot':>11} "
              f"{'new: Steiger':>12} {'Zou excl. 0':>11}")
    print(header)
    print("-" * len(header))
    rng = np.random.default_rng(seed)
    cases = [(d, rho, c) for d in ("normal", "t3", "binomial50") for rho in (0.0, 0.5, 0.8) for c in (0.5, 0.9)]
    for distribution, rho, c in tqdm(cases, desc="type I, benchmark", leave=False):
        R = four_variables(rho, c)
        boot, steiger, zou = [], [], []
        for pt_s, sft_s, pt_l, sft_l in draw(rng, distribution, R, reps):
            boot.append(_paired_difference((pt_s[None], sft_s[None]), (pt_l[None], sft_l[None]), "pearson",
                                           n_boot, 0.95, 0)["p_boot"] < 0.05)
            sample = np.corrcoef([pt_s, sft_s, pt_l, sft_l])
            steiger.append(steiger_z(sample, (2, 3), (0, 1), N)[1] < 0.05)
            low, high = zou_interval(sample, (2, 3), (0, 1), N)
            zou.append(not low <= 0 <= high)
        print(f"{'benchmark':10} {distribution:12} {rho:5.2f} {c:5.2f} | {np.mean(boot):11.1%} "
              f"{np.mean(steiger):12.1%} {np.mean(zou):11.1%}")
    # A category mean of 4 benchmarks that share mixtures (benchmark-to-benchmark correlation 0.5).
    rows = 4
    between = np.full((rows, rows), 0.5) + 0.5 * np.eye(rows)
    for distribution, rho, c in tqdm(cases, desc="type I, category", leave=False):
        R = np.kron(four_variables(rho, c), between)  # variable-major: PT_s rows, SFT_s rows, PT_l, SFT_l
        boot, steiger = [], []
        for sample in draw(rng, distribution, R, reps):
            pt_s, sft_s, pt_l, sft_l = sample.reshape(4, rows, N)
            boot.append(_paired_difference((pt_s, sft_s), (pt_l, sft_l), "pearson", n_boot, 0.95, 0)["p_boot"]
                        < 0.05)
            steiger.append(mean_steiger_z((pt_s, sft_s), (pt_l, sft_l))[1] < 0.05)
        print(f"{'mean of 4':10} {distribution:12} {rho:5.2f} {c:5.2f} | {np.mean(boot):11.1%} "
              f"{np.mean(steiger):12.1%} {'-':>11}")


def permutation_level(reps: int, seed: int) -> None:
    print(f"\n3. Type-I error at alpha = .05 of the exact permutation test of Pearson's r at rho = 0, n = {N}, "
          f"{reps} draws")
    rng = np.random.default_rng(seed)
    for distribution in ("normal", "t3"):
        samples = draw(rng, distribution, np.eye(2), reps)
        rejections = [stats.permutation_pvalue(x, y) < 0.05 for x, y in tqdm(samples, leave=False)]
        kind = "independent" if distribution == "normal" else "uncorrelated, dependent (shared t scale)"
        print(f"  {distribution:8} ({kind}): {np.mean(rejections):.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2000)
    parser.add_argument("--n-boot", type=int, default=1999)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    coverage(args.reps, args.n_boot, args.seed)
    type_one(args.reps, args.n_boot, args.seed + 1)
    permutation_level(min(args.reps, 1000), args.seed + 2)
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
