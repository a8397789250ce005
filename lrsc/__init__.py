"""lrsc: large learning rates, robustness to spurious correlations and compressibility.

A literate reproduction of Barsbey et al. (arXiv 2507.17748). The modules each do one job:
``datasets`` (spurious-correlation data), ``models``, ``train`` (SGD and other optimisers), ``prune``,
``metrics``, ``attribution``, ``sweep`` (grids of hash-addressed runs), ``store``
(xarray results), ``hyper`` (other hyperparameters against LR), ``soup`` (model soups)
and ``plots``.
"""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lrsc")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
