"""The introduction: the grid of the study, the answers to the four questions, how to re-run it."""

from __future__ import annotations

import pandas as pd

from .. import report, results
from ..benchmarks import BENCHMARKS, STUDY_BENCHMARKS
from .noise_floor import NoiseFloor, noise_aware


class Intro:
    """The study's config and scores, for the grid and the answers."""

    def __init__(self, results_dir: str, preset: str, n_boot: int = report.N_BOOT):
        self.cfg = report.study_config(results_dir, preset)
        self.scores = results.table(results_dir, "scores")
        self.n_boot = n_boot
        self.noise = NoiseFloor(results_dir, n_boot)

    def facts(self) -> dict[str, str]:
        cfg = self.cfg
        benchmarks = cfg.eval.benchmarks or STUDY_BENCHMARKS
        categories = {BENCHMARKS[b].category for b in benchmarks}
        return {
            "answers": report.answers_markdown(noise_aware(report.answers(self.scores, self.n_boot), self.noise)),
            "study": cfg.name, "n_web": len(cfg.web_sources), "n_proportions": len(cfg.proportions),
            "n_mixtures": len(cfg.mixture_names), "n_scales": report.counted(len(cfg.scales), "scale"),
            "scales": ", ".join(cfg.scales), "n_seeds": report.seeds_text(cfg),
            "n_checkpoints": len(cfg.mixture_names) * sum(len(cfg.scale_seeds(s)) for s in cfg.scales) * 2,
            "n_benchmarks": len(benchmarks),
            "n_categories": report.counted(len(categories), "category", "categories"),
            "rerun": (f"```bash\nmake book PRESET={cfg.name}                         # compute what is missing, "
                      f"then build this book\n.venv/bin/magic study --preset {cfg.name}           # only the "
                      f"study (resumable)\n.venv/bin/papermill -k python3 book/intro.ipynb out.ipynb -p "
                      f"results_dir results/{cfg.name} -p preset {cfg.name}\n```"),
        }

    def grid(self):
        """The mixtures as a table: web sources (rows) by proportions (columns)."""
        cfg = self.cfg
        shares = {name: f"{p.web * 100:.0f}/{p.code * 100:.0f}/{p.curated * 100:.0f}"
                  for name, p in cfg.proportions.items()}
        grid = pd.DataFrame([{"web source": f"{key}: {web.label}", "code": ", ".join(web.code_pools),
                              **{f"{name}: {shares[name]}": f"{key}-{name}" for name in cfg.proportions}}
                             for key, web in cfg.web_sources.items()])
        # the long labels wrap, so the three proportions fit beside them in the page's column
        return (grid.style.hide(axis="index")
                .set_caption("The mixtures: web source (rows) by web/code/curated percentages (columns)")
                .set_properties(subset=["web source", "code"], **{"white-space": "normal"}))
