"""`unlearn-gym benchmark`: cells, cache and resume, failures, statistics, report files, Ray."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from unlearn_gym.benchmark import BenchmarkConfig, BenchSettings, Entry, build_cells, run_benchmark
from unlearn_gym.benchmark.analysis import claims, pareto_front
from unlearn_gym.benchmark.entries import select_entries
from unlearn_gym.methods import Method, register_method
from unlearn_gym.stats import ci95, fmt_ci, paired

#: tiny budgets: 4 unlearning steps on micro, 4 evaluation samples per label, DDIM-4
FAST = BenchSettings(eval_samples=4, eval_forget_samples=8, eval_steps=4, steps=4, agent_timesteps=8)


@register_method
class _Boom(Method):
    name = "test-boom"
    tasks = ("trousers",)
    summary = "raises at its first step (tests that a failing cell is reported)"

    def step(self, i: int) -> dict[str, float]:
        raise RuntimeError("boom on purpose")


def _cfg(tmp_path, **kw) -> BenchmarkConfig:
    base = dict(preset="micro", seeds=2, methods=["siss", "naive-deletion"], pareto=False, settings=FAST, workers=1,
                out=str(tmp_path / "bench"))
    return BenchmarkConfig(**{**base, **kw})


def test_micro_benchmark_writes_every_file_and_resumes(tmp_path):
    cfg = _cfg(tmp_path)
    first = run_benchmark(cfg, progress=False, command="test")
    out = tmp_path / "bench"
    for name in ("report.md", "results.json", "pareto.png", "time.png"):
        assert (out / name).is_file(), name
    assert first["run"]["computed"] == 4 and not first["failed"]
    res = json.loads((out / "results.json").read_text())
    agg = res["aggregate"]["micro-trousers"]
    for entry in ("siss", "naive-deletion"):
        for m in ("forget_fid", "forget_kid", "forget_is", "retain_fid", "retain_kid", "retain_is", "retain_ssim",
                  "forget_score", "outcome"):
            cell = agg[entry][m]
            assert cell["n"] == 2 and math.isfinite(cell["mean"]) and math.isfinite(cell["ci"]), (entry, m)
    report = (out / "report.md").read_text()
    assert "Table 1 — forget set" in report and "Table 1 — retain set" in report and "±" in report
    assert "## Performance" in report and "## Statistics" in report
    assert "| trial episodes |" in report and "| SISS (λ 0.5) |" in report
    # resume: the second run computes nothing and reports the same numbers
    second = run_benchmark(cfg, progress=False)
    assert second["run"]["computed"] == 0 and second["run"]["cached"] == 4
    assert second["aggregate"] == first["aggregate"]


def test_trial_episodes_count_what_a_row_used_before_its_run():
    from unlearn_gym.benchmark.entries import DEFAULT_ENTRIES, user_policy_entry
    from unlearn_gym.tuned import load_tuned_file

    by = {e.name: e for e in DEFAULT_ENTRIES}
    budget = load_tuned_file("default")["families"]["schedule"]["budget"]
    assert by["tuned-schedule"].trial_episodes(30, 2000) == budget["search_episodes"] + budget["selection_episodes"] > 0
    assert by["ppo-episodic"].trial_episodes(30, 2000) == 67 and by["sac-online"].trial_episodes(30, 2000) == 0
    assert by["siss"].trial_episodes(30, 2000) == 0 == by["constant"].trial_episodes(30, 2000)
    assert user_policy_entry("mod:obj").trial_episodes(30, 2000) is None


def test_a_corrupt_cached_cell_is_recomputed_with_a_warning(tmp_path):
    from unlearn_gym.benchmark.runner import load_cached

    cells = tmp_path / "cells"
    cells.mkdir()
    (cells / "good.json").write_text(json.dumps({"status": "ok", "key": "good"}))
    (cells / "torn.json").write_text('{"status": "ok", "key": "to')  # e.g. a write cut short
    (cells / "list.json").write_text("[]")
    with pytest.warns(UserWarning) as caught:
        cached = load_cached(tmp_path)
    assert set(cached) == {"good"}
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2
    assert str(cells / "list.json") in messages[0] and str(cells / "torn.json") in messages[1]
    assert all("recomputed" in m for m in messages)


def test_failing_method_is_reported_while_others_finish(tmp_path):
    boom = Entry(name="boom", kind="method", target="test-boom")
    cfg = _cfg(tmp_path, seeds=1, methods=["boom", "siss"], entries=(boom, Entry(name="siss", kind="method",
                                                                                      target="siss")))
    res = run_benchmark(cfg, progress=False)
    assert [c["entry"] for c in res["cells"]] == ["siss"]
    assert len(res["failed"]) == 1 and "boom on purpose" in res["failed"][0]["error"]
    report = (tmp_path / "bench" / "report.md").read_text()
    assert "## Failed cells" in report and "boom · micro-trousers · seed 0" in report
    # a failed cell is not cached: the next run retries it (and only it)
    again = run_benchmark(cfg, progress=False)
    assert again["run"]["computed"] == 1 and len(again["failed"]) == 1


def test_cells_skip_what_a_method_cannot_serve_and_keys_are_stable(tmp_path):
    cfg = _cfg(tmp_path, methods=["sfd", "siss"], seeds=1)
    cells, skipped = build_cells(cfg)
    assert [c.entry.name for c in cells] == ["siss"]
    assert skipped[0]["entry"] == "sfd" and "trousers" in skipped[0]["why"]
    again, _ = build_cells(cfg)
    assert cells[0].key() == again[0].key()
    other, _ = build_cells(_cfg(tmp_path, methods=["siss"], seeds=1, settings=BenchSettings(eval_samples=5)))
    assert other[0].key() != cells[0].key()
    with pytest.raises(ValueError, match="matches no entry"):
        select_entries((), ["nope"])


def test_statistics():
    m, h = ci95([1.0, 2.0, 3.0])
    assert m == 2.0 and h == pytest.approx(2.4841, abs=1e-3)  # t(0.975, 2) * 1 / sqrt(3)
    assert math.isnan(ci95([1.0])[1])
    from scipy.stats import ttest_rel

    a, b = {0: 1.0, 1: 2.5, 2: 2.0, 3: 4.0}, {0: 0.5, 1: 2.0, 2: 2.2, 3: 3.0, 9: 7.0}
    p = paired(a, b)
    assert p.n == 4 and p.p == pytest.approx(ttest_rel([1, 2.5, 2, 4], [0.5, 2, 2.2, 3]).pvalue)
    assert pareto_front({"a": (0.0, 2.0), "b": (0.1, 1.0), "c": (0.1, 3.0), "d": (0.0, 2.0)}) == ["a", "d", "b"]
    assert fmt_ci(1234.5, 10.0) == "1234 ± 10" and fmt_ci(float("nan"), 1.0) == "–"


def _cell(entry, seed, **metrics):
    return {"instance": "i", "entry": entry, "seed": seed, "status": "ok", "metrics": metrics}


def test_claim_verdicts_follow_the_stated_rule():
    cells = []
    for s in range(5):
        cells.append(_cell("adaptive-vi", s, forget_fid=100.0 + s + 10, retain_fid=5.0 + 0.01 * s))
        cells.append(_cell("siss", s, forget_fid=100.0 + s + 0.3 * (s % 2), retain_fid=5.0 + 0.02 * (s % 3)))
    v = {c["measure"] + c["claim"][-25:]: c for c in claims(cells, ["i"])}
    fid = next(c for c in v.values() if c["measure"] == "forget_fid")
    assert fid["verdict"] == "confirmed" and fid["paired"]["mean"] > 0
    # make the retain FID of adaptive-vi clearly worse: the guard fails
    for c in cells:
        if c["entry"] == "adaptive-vi":
            c["metrics"]["retain_fid"] += 3.0 + 0.1 * c["seed"]
    fid = next(c for c in claims(cells, ["i"]) if c["measure"] == "forget_fid")
    assert fid["verdict"].startswith("not confirmed: better forget FID but significantly worse retain FID")


def test_static_versus_dynamic_verdicts_correct_for_picking_the_best():
    def outcome_cell(entry, seed, value):
        c = _cell(entry, seed, retain_fid=5.0)
        c["outcome"] = {"outcome": value}
        return c

    noise = [0.01, -0.02, 0.015, -0.005, 0.02, -0.01, 0.0, 0.005, -0.015, 0.01]
    cells = [outcome_cell("tuned-constant", s, 0.5 + noise[s]) for s in range(10)]
    # the schedule is a little better (p = 0.034 alone), the feedback worse, PPO clearly better
    lead = [0.03, -0.005, 0.02, 0.005, 0.025, -0.01, 0.015, 0.02, -0.005, 0.015]
    cells += [outcome_cell("tuned-schedule", s, 0.5 + noise[s] + lead[s]) for s in range(10)]
    cells += [outcome_cell("tuned-feedback", s, 0.3 + noise[s] + 0.01 * (s % 3)) for s in range(10)]
    cells += [outcome_cell("ppo-episodic", s, 0.8 + noise[s] + 0.01 * (s % 2)) for s in range(10)]
    v = {c["claim"]: c for c in claims(cells, ["i"])}
    assert v["ppo-episodic beats the tuned constant on the outcome score"]["verdict"] == "confirmed"
    assert v["tuned-feedback beats the tuned constant on the outcome score"]["verdict"].endswith("significantly worse")
    assert v["RL (ppo-episodic) beats the tuned feedback controller on the outcome score"]["verdict"] == "confirmed"
    best = next(c for c in v.values() if c["claim"].startswith("a dynamic policy"))
    assert best["a"] == "ppo-episodic" and best["alpha"] == pytest.approx(0.05 / 3)
    assert best["verdict"] == "confirmed"
    # without PPO, the best of two is held to p < 0.025, which a marginal schedule does not reach
    v2 = claims([c for c in cells if c["entry"] != "ppo-episodic"], ["i"])
    sched = next(c for c in v2 if c["claim"].startswith("tuned-schedule"))
    best2 = next(c for c in v2 if c["claim"].startswith("a dynamic policy"))
    assert best2["a"] == "tuned-schedule" and best2["alpha"] == pytest.approx(0.025)
    assert 0.025 <= sched["paired"]["p"] < 0.05
    assert sched["verdict"] == "confirmed" and best2["verdict"].startswith("not confirmed")


def test_ray_matches_the_local_executor(tmp_path):
    pytest.importorskip("ray")
    import torch

    kw = dict(seeds=1, methods=["siss", "constant"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what every worker (pool or Ray) runs with
    try:
        local = run_benchmark(_cfg(tmp_path / "local", workers=1, **kw), progress=False)
    finally:
        torch.set_num_threads(threads)
    ray_res = run_benchmark(_cfg(tmp_path / "ray", workers=1, ray=True, **kw), progress=False)
    assert ray_res["run"]["executor"] == "ray" and not ray_res["failed"] and not local["failed"]

    def numbers(res):
        return {c["entry"]: (c["metrics"], c["outcome"], c.get("lambdas")) for c in res["cells"]}

    assert numbers(ray_res) == numbers(local)


def test_vae_rows(tmp_path):
    cfg = _cfg(tmp_path, model="cvae", seeds=1, methods=["siss", "neggrad", "constant"])
    res = run_benchmark(cfg, progress=False)
    assert [c["entry"] for c in res["cells"]] == ["siss", "constant"] and not res["failed"]
    assert res["skipped"] == [{"entry": "neggrad", "instance": "micro-trousers-cvae",
                               "why": "neggrad does not unlearn cvae models"}]
    assert all(math.isfinite(c["metrics"]["retain_fid"]) for c in res["cells"])
    with pytest.raises(ValueError, match=r"not cvae instances.*cvae instance sets: \['vae'\]"):
        build_cells(_cfg(tmp_path, model="cvae", instances="default"))
    with pytest.raises(ValueError, match="not ddpm instances"):
        build_cells(_cfg(tmp_path, instances="vae"))
    cells, _ = build_cells(_cfg(tmp_path, model="cvae", instances="vae:all", seeds=1, methods=["siss"]))
    assert [(c.instance.name, c.model) for c in cells] == [
        ("vae-micro-scale-b8-h30", "cvae"), ("vae-micro-scale-b16-h10", "cvae"), ("vae-micro-scale-b4-h30", "cvae")]


def test_cli(tmp_path, capsys):
    from unlearn_gym.cli import main

    out = str(tmp_path / "cli")
    assert main(["benchmark", "--preset", "micro", "--methods", "nope", "--out", out]) == 2
    assert "matches no entry" in capsys.readouterr().err
    args = ["benchmark", "--preset", "micro", "--methods", "baseline", "siss", "--seeds", "1", "--no-pareto",
            "--steps", "2", "--eval-samples", "2", "--eval-steps", "2", "--workers", "1", "--quiet", "--out", out]
    assert main(args) == 0
    assert "2 cells finished, 0 failed" in capsys.readouterr().out
    assert (tmp_path / "cli" / "report.md").is_file()


def test_ray_cluster_spreads_cells_over_nodes(tmp_path):
    """The multi-node path: a two-node cluster simulated on this machine, joined by address."""
    pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    try:
        res = run_benchmark(_cfg(tmp_path, seeds=2, methods=["siss"], ray=True, ray_address=cluster.address),
                            progress=False)
    finally:
        cluster.shutdown()
    assert not res["failed"] and len(res["cells"]) == 2
    assert len({c["ray_node"] for c in res["cells"]}) == 2  # one cell per node (one CPU each)


@pytest.mark.parametrize("report, kw, key", [
    ("tiny", dict(preset="tiny", settings=BenchSettings(eval_samples=30, eval_steps=25, agent_timesteps=512)),
     "0775613ca17619ab"),
    ("micro-cvae", dict(preset="micro", model="cvae", settings=BenchSettings(agent_timesteps=2048)),
     "ecd1b82e0c2ccb35"),
    ("tiny-erase7", dict(preset="tiny", task="erase-7",
                         settings=BenchSettings(eval_samples=30, eval_steps=25, steps=300)),
     "69854a6f275bedb6"),
])
def test_committed_reports_keep_their_cache_keys(tmp_path, report, kw, key):
    """Adding a field (Instance.model, CellSpec.device) must not orphan the cells of docs/results/<report>."""
    cfg = BenchmarkConfig(seeds=1, methods=["siss"], pareto=False, workers=1, out=str(tmp_path), **kw)
    (cell,), _ = build_cells(cfg)
    assert cell.key() == key
    committed = json.loads((Path(__file__).parents[1] / "docs/results" / report / "results.json").read_text())
    assert key in {c["key"] for c in committed["cells"]}


def test_a_benchmark_cell_leaves_the_global_rngs_alone(tmp_path, monkeypatch):
    import random

    import numpy as np
    import torch

    from unlearn_gym.benchmark import cells as cells_module

    def seeds_everything(spec):  # what an agent cell does through SB3's set_random_seed
        torch.manual_seed(spec.seed)
        np.random.seed(spec.seed)
        random.seed(spec.seed)
        return {"drawn": float(torch.rand(()))}

    monkeypatch.setattr(cells_module, "_run_cell", seeds_everything)
    cells, _ = build_cells(_cfg(tmp_path, methods=["siss"], seeds=1))
    states = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    assert cells_module.run_cell(cells[0].to_dict())["status"] == "ok"
    assert torch.equal(states[0], torch.get_rng_state())
    assert np.array_equal(states[1], np.random.get_state()[1]) and states[2] == random.getstate()


def test_benchmark_policy_adds_a_user_row_paired_with_the_builtin_ones(tmp_path):
    from unlearn_gym.benchmark.entries import DEFAULT_ENTRIES, user_policy_entry

    f = tmp_path / "mine.py"
    f.write_text("import numpy as np\n\ndef zero(obs):\n    return np.zeros(1, np.float32)\n")
    cfg = _cfg(tmp_path, seeds=1, methods=["constant", "mine"],
               entries=(*DEFAULT_ENTRIES, user_policy_entry(f"{f}:zero", "mine")))
    res = run_benchmark(cfg, progress=False)
    rows = {c["entry"]: c for c in res["cells"]}
    assert set(rows) == {"constant", "mine"} and not res["failed"]
    # action 0 is the built-in constant (λ 0.5): the same episode, so the same unlearned model and scores
    assert rows["mine"]["outcome"]["outcome"] == rows["constant"]["outcome"]["outcome"]
    assert rows["mine"]["metrics"] == rows["constant"]["metrics"]
    assert "mine" in (tmp_path / "bench" / "report.md").read_text()
    # editing the policy's file recomputes its row (the source digest is in the key), not the others
    f.write_text(f.read_text() + "# edited\n")
    cfg = _cfg(tmp_path, seeds=1, methods=["constant", "mine"],
               entries=(*DEFAULT_ENTRIES, user_policy_entry(f"{f}:zero", "mine")))
    assert run_benchmark(cfg, progress=False)["run"]["computed"] == 1


def test_the_policy_flag_names_rows_and_refuses_bad_specs(tmp_path, capsys):
    from unlearn_gym.benchmark import BenchmarkConfig
    from unlearn_gym.cli import _user_policy_rows, main

    f = tmp_path / "mine.py"
    f.write_text("def zero(obs):\n    return [0.0]\n")
    over = _user_policy_rows([f"{f}:zero", f"other={f}:zero"], BenchmarkConfig(), ["siss"])
    assert [e.name for e in over["entries"][-2:]] == ["user:zero", "other"]
    assert over["methods"] == ["siss", "user:zero", "other"]
    assert over["entries"][-1].params["source"]  # the file's digest
    with pytest.raises(ValueError, match="unique and new"):
        _user_policy_rows([f"siss={f}:zero"], BenchmarkConfig(), None)
    assert main(["benchmark", "--preset", "micro", "--policy", "no_such_module_xyz:p", "--out", str(tmp_path)]) == 2
    assert "cannot import 'no_such_module_xyz'" in capsys.readouterr().err
    assert not (tmp_path / "cells").exists()


def test_forget_tests_add_the_did_it_forget_table(tmp_path, monkeypatch):
    from dataclasses import replace

    from unlearn_gym.benchmark import forgetting

    monkeypatch.setattr(forgetting, "RELEARN_KW", {"n_samples": 20, "checkpoints": (0, 2, 5)})
    settings = replace(FAST, forget_tests=True)
    assert "forget_tests" not in FAST.to_dict() and settings.to_dict()["forget_tests"] is True
    cfg = _cfg(tmp_path, seeds=1, methods=["baseline", "siss"], settings=settings)
    res = run_benchmark(cfg, progress=False)
    assert not res["failed"]
    rows = {c["entry"]: c["forget"] for c in res["cells"]}
    for f in rows.values():
        assert f["verdict"] in forgetting.VERDICTS and len(f["loss_ratio"]) == 3 and f["early_relearn"][0] == 2
    # the pretrained model has not forgotten: its forget loss is below the retrained model's
    assert rows["baseline"]["loss_ratio"][0] < 1.0 and rows["baseline"]["verdict"] != "like retrained"
    report = (tmp_path / "bench" / "report.md").read_text()
    assert "## Did it forget?" in report and "| siss | 1 |" in report


def test_the_forget_table_counts_verdicts_and_names_rows_that_game_the_outcome():
    from unlearn_gym.benchmark.forgetting import forget_table

    def cell(entry, seed, outcome, ratio, early, verdict):
        return {"entry": entry, "instance": "i", "seed": seed, "outcome": {"outcome": outcome},
                "forget": {"trouser_rate": 0.01, "loss_ratio": [ratio, ratio - 0.1, ratio + 0.1],
                           "auc_difference": [0.0, -0.1, 0.1], "early_relearn": [2, early, 0.01],
                           "verdict": verdict}}

    cells = [cell("a", s, 0.9, 0.6, 0.3, "stopped drawing only") for s in range(3)]
    cells += [cell("b", s, 0.2, 1.0 + 0.01 * s, 0.01, "like retrained") for s in range(3)]
    text = "\n".join(forget_table(cells, ["a", "b"]))
    assert "| a | 3 |" in text and "| 0 / 3 / 0 |" in text and "| 3 / 0 / 0 |" in text
    assert "not like the retrained one" in text and "`a`" in text and "`b`" not in text.split("retrained one")[-1]
    assert "outcome vs loss ratio ρ = -" in text  # here the outcome rewards the row that did not forget
