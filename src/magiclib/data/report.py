"""The table `magic data` prints: per mixture, tokens and epochs per pool, documents removed per filter.

It is built from the summaries the data steps return (and the runner keeps in each step's run.json):
`prepare_pools`'s (documents removed per pool and stage) and each `build_mixture`'s stats.
"""

from __future__ import annotations

import pandas as pd

from ..config import POOLS

FILTER_STAGES = ("heuristic", "exact_dedup", "near_dedup", "edu", "quality")


def data_table(summaries: list[dict]) -> pd.DataFrame:
    """One row per mixture and seed. Accepts the bare summaries or the runner's {"step", "summary"} items.

    Pools are columns by name, except that the mixture's web source is `web`; `removed_<stage>` counts
    the web source's documents dropped by that stage, `removed_decontam` those dropped from all its pools.
    """
    bare = [item["summary"] if "step" in item else item for item in summaries]
    removed = next((s["removed"] for s in bare if s and "removed" in s), {})
    rows = []
    for stats in (s for s in bare if s and "mixture" in s):
        row = {"mixture": stats["mixture"], "seed": stats["seed"], "tokens": stats["tokens"]}
        for pool, info in stats["pools"].items():
            label = "web" if info["role"] == "web" else pool
            row[f"tokens_{label}"] = info["tokens"]
            row[f"epochs_{label}"] = info["epochs"]
        web = next(pool for pool, info in stats["pools"].items() if info["role"] == "web")
        for stage in FILTER_STAGES:
            row[f"removed_{stage}"] = removed.get(web, {}).get(stage, 0)
        row["removed_decontam"] = sum(removed.get(pool, {}).get("decontam", 0) for pool in stats["pools"])
        rows.append(row)
    table = pd.DataFrame(rows)
    pools = sorted({c.split("_", 1)[1] for c in table.columns if c.startswith("epochs_")},
                   key=lambda p: POOLS.index(p) if p in POOLS else len(POOLS))  # "web" is first in POOLS
    ordered = [c for c in ("mixture", "seed", "tokens") if c in table.columns]
    ordered += [f"tokens_{p}" for p in pools] + [f"epochs_{p}" for p in pools]
    return table[ordered + [c for c in table.columns if c.startswith("removed_")]]
