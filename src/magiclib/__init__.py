"""magiclib: the library behind the Magic Correlations book.

Pretrain small decoder LMs on nine data mixtures, fine-tune them, score them on twenty benchmarks and
measure how benchmark rankings transfer from pretraining to SFT (arXiv 2602.11217, reproduced and extended).
"""

__version__ = "0.1.0"
