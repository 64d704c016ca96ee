"""mamc: a notebook-first reproducibility kit for MAMA (arXiv 2407.03788)."""

__version__ = "0.1.0"
