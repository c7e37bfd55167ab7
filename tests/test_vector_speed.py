"""benchmarks/vector_speed.py (also what benchmarks/device_check.py runs on a GPU) runs end to end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
vector_speed = pytest.importorskip("vector_speed")


def test_speed_rows_and_json(tmp_path):
    out = tmp_path / "speed.json"
    res = vector_speed.main(["--models", "VAE", "--batch", "8", "--n", "2", "--steps", "1", "--rounds", "1",
                             "--async-max", "0", "--json", str(out)])
    (row,) = res["rows"]
    assert set(row["steps_per_s"]) == {"loop", "batched", "sync"} and all(v > 0 for v in row["steps_per_s"].values())
    assert row["ratio_to_sync"]["sync"] == 1.0 and row["copy_bytes"]["total"] > 0
    assert json.loads(out.read_text())["rows"][0]["n"] == 2 and not list(tmp_path.glob("*.tmp"))


def test_profile_parts_add_up():
    (row,) = vector_speed.main(["--models", "VAE", "--batch", "8", "--n", "4", "--steps", "2", "--profile"])["rows"]
    parts = row["ms_per_vector_step"]
    assert parts["forward (vmap)"] > 0 and parts["both backward passes (autograd engine)"] > 0
    assert parts["AdamW (fused)"] > 0 and parts["update"] <= parts["step"]
    assert parts["update: norms, rule, clip, results"] >= 0 and parts["env: the rest"] >= 0
