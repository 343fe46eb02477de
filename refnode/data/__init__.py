"""Data for the experiments, generated in code or read from local files (no network needed).

* :mod:`~refnode.data.spirals` — noisy 2-D spirals for the latent ODE (paper §5.1).
* :mod:`~refnode.data.toy2d` — 2-D toy samplers and the density-matching targets (§4).
* :mod:`~refnode.data.idx` — MNIST / Fashion-MNIST IDX files (§3, Table 1).
"""

from .idx import download_mnist, fashion_mnist_dir, load_mnist, normalize, read_idx
from .spirals import Spirals, Subsample, generate_spirals, irregular_subsample, split_windows
from .toy2d import (TARGET_LOG_DENSITIES, TOY_DATASETS, sample, target_log_density,
                    target_score)

__all__ = [
    "Spirals", "Subsample", "generate_spirals", "irregular_subsample", "split_windows",
    "TOY_DATASETS", "TARGET_LOG_DENSITIES", "sample", "target_log_density",
    "target_score",
    "read_idx", "load_mnist", "normalize", "fashion_mnist_dir", "download_mnist",
]
