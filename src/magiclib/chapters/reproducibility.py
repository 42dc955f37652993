"""Reproducibility: how to re-run a chapter, the presets, the software versions and the run records."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .. import io, report
from ..config import available_presets, load_config


class Reproducibility:
    """The results folder, its config and its run records."""

    def __init__(self, results_dir: str, preset: str):
        self.cfg = report.study_config(results_dir, preset)
        self.results = Path(results_dir)
        self.records = self._records()

    def facts(self) -> dict[str, str]:
        results, name = self.results, self.cfg.name
        records = (f"{len(self.records)} run records under `{results}`, by kind (seconds: total and median per "
                   "run):" if len(self.records) else
                   f"No run records under `{results}` yet: run `magic study --preset {name}` first.")
        return {"results": f"`{results}`", "preset": f"`{name}`", "records": records,
                "rerun_chapter": (f"```bash\n.venv/bin/papermill -k python3 book/rq1_persistence.ipynb out.ipynb "
                                  f"-p results_dir {results} -p preset {name}\n```"),
                "rerun_book": f"```bash\n.venv/bin/magic book --preset {name} --results {results}\n```"}

    def presets_table(self):
        rows = []
        for name in available_presets():
            cfg = load_config(name)
            for _, scale in report.scales_table(cfg).iterrows():
                rows.append({"preset": name, "scale": scale["scale"], "parameters": scale["parameters"],
                             "PT tokens": scale["PT tokens"], "PT FLOPs": scale["PT FLOPs"],
                             "SFT examples": cfg.sft_data.max_examples or "all",
                             "items per benchmark": cfg.eval.items_per_benchmark or "all",
                             "data": cfg.data.source, "GPUs": scale["GPUs per run"]})
        return (pd.DataFrame(rows).style.hide(axis="index").set_caption("Per run (one mixture at one scale)")
                .format({"parameters": report.human, "PT tokens": report.human, "PT FLOPs": "{:.1e}"}))

    def versions_table(self):
        versions = {"magiclib commit": io.git_commit() or "not a git checkout", **io.library_versions()}
        return pd.DataFrame(versions.items(), columns=["package", "version"]).style.hide(axis="index")

    def _records(self) -> pd.DataFrame:
        rows = []
        for path in sorted(self.results.rglob(io.RUN_RECORD)) if self.results.is_dir() else []:
            record = io.read_json(path)
            notebook = path.with_name("run.ipynb")
            rows.append({
                "kind": record.get("kind"), "folder": str(path.parent.relative_to(self.results)),
                "seconds": record.get("seconds"), "commit": (record.get("git_commit") or "")[:7],
                "notebook": f'<a href="{notebook.resolve().as_uri()}">run.ipynb</a>' if notebook.exists() else "",
            })
        return pd.DataFrame(rows)

    def records_summary(self):
        """Run records by kind: count, total and median seconds, commits; None without records."""
        if self.records.empty:
            return None
        summary = self.records.groupby("kind").agg(runs=("folder", "size"), seconds=("seconds", "sum"),
                                                   median=("seconds", "median"),
                                                   commits=("commit", lambda c: ", ".join(sorted(set(c)))))
        return summary.style.format({"seconds": "{:,.0f}", "median": "{:.1f}"})

    def records_listing(self):
        """Every run record with its executed notebook, folded; None without records."""
        from IPython.display import HTML

        if self.records.empty:
            return None
        listing = self.records.drop(columns="commit").to_html(index=False, escape=False,
                                                              float_format="{:.1f}".format)
        return HTML(f"<details><summary>Every run record, with its executed notebook</summary>{listing}</details>")
