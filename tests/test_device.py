"""`device=`: the one device convention (unlearn_gym.device) through env, methods, pretraining, CLI.

On a machine without CUDA the accelerator tests are skipped; what runs everywhere checks the
argument handling, the clear errors, and that an explicit ``device="cpu"`` is the default run.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import unlearn_gym  # noqa: F401
from unlearn_gym.device import model_device, rand, randint, randn, resolve_device
from unlearn_gym.methods import run

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA device")
no_cuda = pytest.mark.skipif(CUDA, reason="checks the error on a machine without CUDA")
FAST = {"preset": "micro", "batch_size": 16, "outcome": False}


def test_resolve_device_names():
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if CUDA else "cpu")
    for bad in ("tpu", "gpu", "cuda:x"):
        with pytest.raises(ValueError, match="device"):
            resolve_device(bad)


@no_cuda
def test_missing_cuda_says_what_to_do():
    with pytest.raises(ValueError, match=r"torch.cuda.is_available\(\) is False.*device='cpu'"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="is_available"):
        gym.make("unlearn_gym:SISSUnlearnMicro-v0", device="cuda", **FAST)
    with pytest.raises(ValueError, match="is_available"):
        run("siss", preset="micro", steps=1, batch_size=8, device="cuda")


def test_random_draws_come_from_the_cpu_generator():
    """The helpers draw on the CPU and only then move: the stream does not depend on the device."""
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a = torch.cat([randn((4, 2), g1).flatten(), rand((3,), g1), randint(0, 9, (5,), g1).float()])
    b = torch.cat([torch.randn(4, 2, generator=g2).flatten(), torch.rand(3, generator=g2),
                   torch.randint(0, 9, (5,), generator=g2).float()])
    assert torch.equal(a, b)
    assert randn((2,), torch.Generator().manual_seed(0), torch.device("cpu")).device.type == "cpu"


def _episode(**kw) -> np.ndarray:
    env = gym.make("unlearn_gym:SISSUnlearnMicro-v0", horizon=4, **FAST, **kw)
    obs, _ = env.reset(seed=5)
    out = [obs]
    for a in (-0.5, 0.0, 0.5, 1.0):
        obs, *_ = env.step(np.array([a], np.float32))
        out.append(obs)
    assert model_device(env.unwrapped.model) == resolve_device(kw.get("device"))
    env.close()
    return np.stack(out)


def test_explicit_cpu_is_the_default_run():
    np.testing.assert_array_equal(_episode(), _episode(device="cpu"))


def test_env_records_its_device():
    env = gym.make("unlearn_gym:SISSUnlearnMicro-v0", device="auto", **FAST)
    assert env.unwrapped.config["device"] == str(resolve_device("auto"))
    env.close()


@needs_cuda
@pytest.mark.parametrize("model", ["ddpm", "cvae"])
def test_cuda_episode_matches_cpu(model):
    """Same random stream on both devices: the trajectories agree up to float arithmetic."""
    cpu, gpu = _episode(model=model), _episode(model=model, device="cuda")
    np.testing.assert_allclose(gpu, cpu, rtol=0.05, atol=0.05)


@needs_cuda
@pytest.mark.parametrize("method", ["siss", "adaptive-vi", "naive-deletion", "erasediff", "hybrid"])
def test_cuda_methods_run(method):
    res = run(method, preset="micro", steps=3, batch_size=8, device="cuda")
    assert model_device(res.model).type == "cuda"
    assert all(np.isfinite(r.get("loss", 0.0)) for r in res.log)


@needs_cuda
@pytest.mark.parametrize("method", ["sfd", "sfd-align"])
def test_cuda_erase_methods_run(method):
    extra = {"pool_per_class": 4, "pool_steps": 2} if method == "sfd-align" else {}
    res = run(method, preset="micro", task="erase-7", steps=2, batch_size=8, device="cuda", **extra)
    assert len(res.log) == 2


@needs_cuda
def test_cuda_pretraining_and_sampling(tmp_path):
    from unlearn_gym.diffusion import NoiseSchedule, pretrain, sample_images

    state = pretrain("micro", tmp_path / "d.pt", steps=3, progress=False, device="cuda", save_every=10)
    assert model_device(state["model"]).type == "cuda"
    labels = torch.arange(10)
    x = sample_images(state["ema"], NoiseSchedule(), labels, torch.randn(10, 1, 8, 8), steps=3)
    assert x.device.type == "cpu" and x.shape == (10, 1, 8, 8)


def test_benchmark_device_enters_cells_and_env_arguments(tmp_path):
    from dataclasses import replace

    from unlearn_gym.benchmark import BenchmarkConfig, build_cells
    from unlearn_gym.benchmark.cells import CellSpec, agent_overrides, env_kwargs_of

    cfg = BenchmarkConfig(preset="micro", seeds=1, methods=["siss"], pareto=False, workers=1, out=str(tmp_path))
    (cpu,), _ = build_cells(cfg)
    (explicit,), _ = build_cells(replace(cfg, device="cpu"))
    assert cpu.device == "cpu" and cpu.key() == explicit.key()  # CPU keys are those made before --device
    assert "device" not in env_kwargs_of(cpu)
    gpu = CellSpec.from_dict({**cpu.to_dict(), "device": "cuda"})  # posed without a GPU: no run
    assert gpu.key() != cpu.key() and env_kwargs_of(gpu)["device"] == "cuda"
    assert 'env_kwargs.device="cuda"' in agent_overrides(gpu)
    if not CUDA:
        with pytest.raises(ValueError, match="is_available"):
            build_cells(replace(cfg, device="cuda"))


def test_cli_device_flag(tmp_path, capsys):
    from unlearn_gym.cli import build_parser

    for cmd in (["pretrain"], ["sample"], ["evaluate", "pretrained"], ["unlearn", "--method", "siss"],
                ["benchmark"], ["ship", "--preset", "micro"]):
        assert build_parser().parse_args([*cmd, "--device", "auto"]).device == "auto"
        assert build_parser().parse_args(cmd).device == "cpu"
