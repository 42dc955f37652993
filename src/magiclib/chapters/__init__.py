"""What each book chapter computes: one module per chapter notebook in book/, named after it.

A chapter notebook holds prose, its papermill parameters and charts; everything it computes is here.
Each module has one class, built from `results_dir` and `preset`, that loads what the chapter needs once
and offers `facts()` (the values its prose shows, for `report.glue_all`), its tables (pandas Stylers)
and its charts (Altair, for `plots.show`). Shared formatting lives in `magiclib.report`.
"""
