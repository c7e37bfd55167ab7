"""The ``unlearn-gym`` command line: thin wrappers that parse, call the library and print."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from unlearn_gym.cli_parser import Handler, make_parser


def cmd_pretrain(a: argparse.Namespace) -> int:
    from unlearn_gym.data import build_contaminated_mnist
    from unlearn_gym.diffusion import pretrain
    from unlearn_gym.vae import pretrain_cvae

    if a.task != "trousers" and not a.retain_only:
        print(f"--task {a.task} only says whose forget set --retain-only drops; add --retain-only", file=sys.stderr)
        return 2
    data = build_contaminated_mnist(a.preset, ratio=a.ratio, mnist_dir=a.mnist_dir, fashion_dir=a.fashion_dir)
    out = a.out or f"runs/{a.model}-{a.preset}.pt"
    train = pretrain_cvae if a.model == "cvae" else pretrain
    state = train(a.preset, out, steps=a.steps, seed=a.seed, data=data, resume=a.resume,
                  until=a.until, save_every=a.save_every, log_dir=a.log_dir, command=_command(a), device=a.device,
                  retain_only=a.retain_only, task=a.task)
    print(f"saved {out} after {state['step']} steps ({state['elapsed_s']:.0f} s, loss {state['loss']:.4f})")
    return 0


def cmd_info(a: argparse.Namespace) -> int:
    from unlearn_gym.data import DataNotFoundError, build_contaminated_mnist, find_source
    from unlearn_gym.presets import PRESETS
    from unlearn_gym.pretrained import SHIPPED_RATIOS, asset_path

    print(f"unlearn-gym {__import__('unlearn_gym').__version__}")
    for name in ("mnist", "fashion"):
        for split in ("train", "test"):
            directory = a.mnist_dir if name == "mnist" else a.fashion_dir
            try:
                src = find_source(name, split, directory)
            except DataNotFoundError as e:
                print(f"  {name:8s} {split:5s}: NOT FOUND\n{e}")
                return 1
            if src.split == "all":
                print(f"  {name:8s} all  : {len(src.labels):6d} images from {src.origin} (no official"
                      " test split: a stratified 15 % is held out)")
                break
            print(f"  {name:8s} {split:5s}: {len(src.labels):6d} images from {src.origin}")
    data = build_contaminated_mnist(a.preset, mnist_dir=a.mnist_dir, fashion_dir=a.fashion_dir)
    m = data.meta
    print(f"contaminated dataset ({a.preset}, {m['resolution']}x{m['resolution']}): {m['n_retain']} retain digits"
          f" {m['retain_counts']}, {m['n_forget']} trousers labelled 1 (ratio {m['ratio']} of"
          f" {m['n_real_ones']} ones), {m['n_test']} held-out digits, {m['n_test_trousers']} held-out"
          f" trousers, hash {m['content_hash']}")
    for name, p in PRESETS.items():
        kinds = ("ddpm", "cvae", "classifier")
        shipped = [k for k in kinds if asset_path(k, name).is_file()]
        shipped += [f"{k} ratio {r:g}" for k in ("ddpm", "cvae") for r in SHIPPED_RATIOS[1:]
                    if asset_path(k, name, r).is_file()]
        res = f"{p.resolution}x{p.resolution}"
        print(f"  preset {name:8s} {res:6s} shipped: {', '.join(shipped) or '-':32s} ({p.note})")
    return 0


def cmd_train_classifier(a: argparse.Namespace) -> int:
    from unlearn_gym.classifier import train_classifier
    from unlearn_gym.data import build_contaminated_mnist

    data = build_contaminated_mnist(a.preset, mnist_dir=a.mnist_dir, fashion_dir=a.fashion_dir)
    out = a.out or f"runs/classifier-{a.preset}.pt"
    _, metrics = train_classifier(a.preset, out, data=data, epochs=a.epochs, seed=a.seed, command=_command(a))
    print(f"saved {out}: held-out accuracy {metrics['test_accuracy']:.4f} (digits"
          f" {metrics['test_digit_accuracy']:.4f}, trousers {metrics['test_trouser_accuracy']:.4f},"
          f" n={metrics['n_test']}), {metrics['train_seconds']} s")
    return 0


def cmd_sample(a: argparse.Namespace) -> int:
    import torch

    from unlearn_gym.device import resolve_device
    from unlearn_gym.diffusion import NoiseSchedule, is_one_step, sample
    from unlearn_gym.imaging import image_grid, save_png
    from unlearn_gym.pretrained import load_model_file, load_pretrained

    model = load_model_file(a.checkpoint) if a.checkpoint else load_pretrained(a.preset, model=a.model)
    model.to(resolve_device(a.device))
    labels = torch.arange(10).repeat_interleave(a.per_label)
    gen = torch.Generator().manual_seed(a.seed)
    if is_one_step(model):  # SFD's one-step generator, a VAE: one forward pass from the same kind of noise
        x = model.generate(labels, torch.randn(len(labels), 1, model.resolution, model.resolution, generator=gen))
    else:
        x = sample(model, NoiseSchedule(), labels, steps=a.steps, eta=1.0 if a.ddpm else 0.0, generator=gen)
    save_png(a.out, image_grid(x, a.per_label, scale=a.scale))
    how = "one pass each" if is_one_step(model) else f"{a.steps} steps"
    print(f"wrote {a.out}: one row per label 0-9, {a.per_label} samples each ({how})")
    return 0


def cmd_ship(a: argparse.Namespace) -> int:
    from unlearn_gym.ship import ship_assets

    shipped_classifier = a.shipped_classifier or ((a.model == "cvae" or a.variant == "retrained")
                                                  and a.classifier is None)
    classifier = None if shipped_classifier else (a.classifier or f"runs/classifier-{a.preset}.pt")
    q = ship_assets(a.preset, a.ddpm or f"runs/{a.model}-{a.preset}.pt", classifier,
                    n_per_label=a.per_label, steps=a.steps, seed=a.seed, command=_command(a), model=a.model,
                    device=a.device, dest=a.dest, variant=a.variant)
    acc = ", ".join(f"{k}: {v['accuracy']:.3f}" for k, v in q["per_label"].items())
    how = "prior" if a.model == "cvae" else f"DDIM-{q['ddim_steps']}"
    print(f"installed {a.preset} {a.model} assets in {q['dest']}. Per-label accuracy ({q['n_per_label']} {how} samples"
          f" each): {acc}")
    print(f"label 1: confident trouser {q['trouser_rate']:.3f}, confident one {q['one_rate']:.3f},"
          f" junk {q['junk_rate']:.3f}; other labels {q['other_accuracy']:.3f} ({q['seconds']} s)")
    return 0


def cmd_evaluate(a: argparse.Namespace) -> int:
    from unlearn_gym.device import resolve_device
    from unlearn_gym.eval.evaluate import evaluate, load_eval_model, write_evaluation
    from unlearn_gym.eval.report import sampler_text
    from unlearn_gym.pretrained import load_classifier, model_family

    dev = resolve_device(a.device)
    model, preset = load_eval_model(a.checkpoint, a.preset or ("tiny" if a.checkpoint == "pretrained" else None),
                                    model=a.model)
    family = a.model if a.checkpoint == "pretrained" else model_family(model)  # 'pretrained' reference: same family
    reference = None
    if a.reference != "none":
        reference = model if a.reference == a.checkpoint else load_eval_model(a.reference, preset, model=family)[0]
        reference.to(dev)
    model.to(dev)
    # the forget tests' reference first: a task without a shipped one fails before the evaluation runs
    forget_ref = _forget_reference(a, preset, family, dev) if a.forget_tests else None
    classifier = load_classifier(preset, a.classifier) if a.classifier else None
    report = evaluate(model, reference, preset, classifier=classifier, classifier_name=a.classifier,
                      samples_per_label=a.samples, forget_samples=a.forget_samples, steps=a.steps,
                      seed=a.seed, threshold=a.threshold, model_name=a.checkpoint,
                      reference_name=a.reference, progress=not a.quiet)
    out = a.out or "runs/eval"
    paths = write_evaluation(report, out, scale=max(2, 32 // report.samples["model"].shape[-1]))
    s, t = report.summary, report.timing
    print(f"label 1 ({s['n_forget_samples']} samples): trouser {s['trouser_rate']:.3f}, one {s['one_rate']:.3f},"
          f" junk {s['junk_rate']:.3f}; FID vs trousers {s['forget_fid']:.2f}, KID {s['forget_kid']:.3g}")
    print(f"retain ({s['n_retain_samples']} samples): FID {s['retain_fid']:.2f}, KID {s['retain_kid']:.3g},"
          f" IS {s['retain_is']:.3f}, digit accuracy {s['retain_accuracy']:.3f}")
    if s.get("retain_ssim") is not None:
        fs = "n/a" if s["forget_ssim"] is None else f"{s['forget_ssim']:.3f}"
        print(f"SSIM vs {a.reference}: retain {s['retain_ssim']:.3f}, forget {fs}"
              f" ({s['n_forget_ssim_pairs']} reference-trouser pairs)")
    print(f"{sampler_text(report.config)}, seed {report.config['seed']}, {t['total_s']} s."
          f" Wrote {', '.join(str(p) for p in paths.values())} (grid: reference left, model right)")
    if forget_ref is not None:
        _forget_tests(a, model, preset, classifier, out, *forget_ref)
    return 0


def _forget_reference(a: argparse.Namespace, preset: str, family: str, dev: object) -> tuple[str, float, object]:
    """The task, ratio and retrained reference of ``evaluate --forget-tests``: ``--task``/``--ratio``,
    else the checkpoint's; a missing reference raises the ``CheckpointError`` naming the command
    that trains it."""
    from unlearn_gym.eval.forgetting import checkpoint_task_ratio
    from unlearn_gym.pretrained import load_pretrained

    task, ratio = checkpoint_task_ratio(a.checkpoint)
    task, ratio = a.task or task, (a.ratio if a.ratio is not None else ratio)
    retrained = load_pretrained(preset, ratio=ratio, model=family, variant="retrained", task=task, device=dev)
    return task, ratio, retrained


def _forget_tests(a: argparse.Namespace, model: object, preset: str, classifier: object, out: str, task: str,
                  ratio: float, retrained: object) -> None:
    """``evaluate --forget-tests``: membership, relearning and distance against the retrained model."""
    from unlearn_gym.eval.forgetting import forget_tests, write_forget_tests

    res = forget_tests(model, preset, task=task, ratio=ratio, classifier=classifier, retrained=retrained,
                       seed=a.seed, distance_kw={"samples_per_label": a.samples, "forget_samples": a.forget_samples,
                                                 "steps": a.steps})
    paths = write_forget_tests(res, out, name=a.checkpoint)
    for k, v in res["verdict"].items():
        print(f"forget test, {k}: {v}")
    print(f"forget tests against the {preset} model retrained without the {task} forget set (ratio {ratio:g}),"
          f" {res['seconds']} s."
          f" Wrote {paths['json']}, {paths['markdown']}")


def cmd_unlearn(a: argparse.Namespace) -> int:
    from unlearn_gym.methods import parse_assignments, run
    from unlearn_gym.methods.outputs import TensorBoardLog, evaluate_run, write_run

    out = a.out or f"runs/unlearn-{a.method}-{a.preset}-{a.task}-s{a.seed}"
    params = parse_assignments(a.set or [])
    params.setdefault("device", a.device)
    with TensorBoardLog(None if a.no_tensorboard else f"{out}/tb") as tb:
        result = run(a.method, preset=a.preset, task=a.task, steps=a.steps, seed=a.seed,
                     progress=not a.quiet, callback=tb, **params)
    paths = write_run(result, out, command=_command(a))
    last = result.log[-1]
    lam = f"λ {last['lambda']:.3f}, " if "lambda" in last else ""
    state = "DIVERGED at" if result.diverged else "done:"
    print(f"{result.method} on {result.task} ({result.preset}) {state} {len(result.log)} steps in"
          f" {result.seconds:.1f} s; last step {lam}loss {last.get('loss', float('nan')):.4f}")
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    if a.eval_samples > 0 and not result.diverged:
        report = evaluate_run(result, out, samples_per_label=a.eval_samples, forget_samples=a.eval_forget_samples,
                              steps=a.eval_steps, seed=a.eval_seed, progress=not a.quiet)
        s = report.summary
        if "erased_accuracy" in s:
            print(f"erased digit {s['erased_digit']}: accuracy {s['erased_accuracy']:.3f}; other digits"
                  f" {s['other_digit_accuracy']:.3f} (min {s['min_other_digit_accuracy']:.3f})")
        print(f"label 1: trouser {s['trouser_rate']:.3f}, one {s['one_rate']:.3f}, junk {s['junk_rate']:.3f};"
              f" retain FID {s['retain_fid']:.2f}, digit accuracy {s['retain_accuracy']:.3f}"
              f" ({report.timing['total_s']} s). Wrote {out}/metrics.json, metrics.md, samples.png")
    return 1 if result.diverged else 0


def cmd_train_agent(a: argparse.Namespace) -> int:
    from unlearn_gym.rl.train import args_from_namespace, train

    train(args_from_namespace(a), command=_command(a))
    return 0


def _user_policy_rows(specs: list[str], cfg: Any, methods: list[str] | None) -> dict[str, Any]:
    """``entries`` (and ``methods``) of a benchmark with ``--policy [NAME=]MODULE:OBJECT`` rows added."""
    from unlearn_gym.benchmark.entries import DEFAULT_ENTRIES, user_policy_entry
    from unlearn_gym.user_objects import load_object

    rows = []
    for item in specs:
        name, eq, spec = item.partition("=")
        if not eq or ":" in name:  # no NAME= prefix (a path may contain '=' only after a ':')
            name, spec = "", item
        load_object(spec)  # fails here, with what to do, not in every cell
        rows.append(user_policy_entry(spec, name or None))
    names = [r.name for r in rows]
    taken = {e.name for e in (cfg.entries or DEFAULT_ENTRIES)}
    if len(set(names)) != len(names) or taken & set(names):
        raise ValueError(f"--policy row names must be unique and new, got {names}; name them NAME=MODULE:OBJECT")
    out: dict[str, Any] = {"entries": tuple(cfg.entries or DEFAULT_ENTRIES) + tuple(rows)}
    if methods is not None:
        out["methods"] = [*methods, *names]
    return out


def cmd_benchmark(a: argparse.Namespace) -> int:
    from dataclasses import replace

    from unlearn_gym.benchmark import BenchmarkConfig, quick_config, run_benchmark

    cfg = quick_config() if a.quick else BenchmarkConfig()
    over: dict = {"preset": a.preset, "instances": a.instances, "task": a.task, "workers": a.workers, "model": a.model,
                  "out": a.out or ("runs/benchmark-quick" if a.quick else "runs/benchmark"),
                  "ray": a.ray is not None, "ray_address": a.ray or None, "pareto": a.pareto, "seed0": a.seed0,
                  "device": a.device}
    if a.seeds is not None:
        over["seeds"] = a.seeds
    if a.pareto_lambdas:
        over["pareto_lambdas"] = tuple(a.pareto_lambdas)
    if a.pareto_scales:
        over["pareto_scales"] = tuple(a.pareto_scales)
    if a.methods:
        over["methods"] = [m.strip() for item in a.methods for m in item.split(",") if m.strip()]
    if a.policy:
        over.update(_user_policy_rows(a.policy, cfg, over.get("methods")))
    settings = {k: v for k, v in (("eval_samples", a.eval_samples), ("eval_steps", a.eval_steps),
                                  ("agent_timesteps", a.agent_timesteps), ("steps", a.steps)) if v is not None}
    if a.forget_tests:
        settings["forget_tests"] = True
    if a.quick and a.instances and a.steps is None:
        settings["steps"] = None  # a registered instance keeps its own horizon (it is part of the problem)
    cfg = replace(cfg, **over, settings=replace(cfg.settings, **settings))
    res = run_benchmark(cfg, progress=not a.quiet, command=_command(a))
    n_ok, n_fail = len(res["cells"]), len(res["failed"])
    print(f"{n_ok} cells finished, {n_fail} failed in {res['run']['wall_s']:.0f} s;"
          f" wrote {cfg.out}/report.md, results.json and figures")
    for v in res["claims"]:
        print(f"  {v['instance']}: {v['claim']}: {v['verdict']}")
    return 1 if n_fail else 0


def cmd_evaluate_policy(a: argparse.Namespace) -> int:
    import json

    from unlearn_gym.baseline_rows import SELECTION_SEEDS
    from unlearn_gym.envs.instances import INSTANCE_SETS
    from unlearn_gym.policy_eval import evaluate_policy, load_object

    spec = a.instances  # SET[:SPLIT], or instance names a,b
    instances = spec if ":" in spec or spec in INSTANCE_SETS else [n.strip() for n in spec.split(",") if n.strip()]
    env_kwargs = json.loads(a.env_kwargs) if a.env_kwargs else None
    if env_kwargs is not None and not isinstance(env_kwargs, dict):
        raise ValueError(f"--env-kwargs must be a JSON object, got {a.env_kwargs!r}")
    result = evaluate_policy(load_object(a.policy), instances, range(a.seed0, a.seed0 + a.seeds), name=a.name,
                             env_kwargs=env_kwargs, selection_seeds=a.selection_seeds or SELECTION_SEEDS,
                             cache_dir=a.cache_dir, progress=not a.quiet)
    print(result.to_markdown())
    if a.out:
        paths = result.write(a.out)
        print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


def cmd_instances(a: argparse.Namespace) -> int:
    from unlearn_gym.envs.instances import INSTANCE_SETS

    if a.set and a.set not in INSTANCE_SETS:
        raise ValueError(f"unknown instance set {a.set!r}; known sets: {sorted(INSTANCE_SETS)}")
    sets = [INSTANCE_SETS[a.set]] if a.set else list(INSTANCE_SETS.values())
    for s in sets:
        print(f"{s.name} (version {s.version}): {s.description}")
        for split in ("train", "test"):
            for i in s.split(split):
                print(f"  {split:5s} {i.name:34s} {i.model:4s} {i.preset:5s} {i.task:9s} contamination"
                      f" {i.data_ratio:g}, T {i.horizon}, B {i.batch_size}, lr {i.lr:g}, rule {i.rule} {i.scale:g},"
                      f" action {i.action}, reward {i.reward}")
    return 0


def _command(a: argparse.Namespace) -> str:
    """The command line recorded in sidecars: ``unlearn-gym`` and the arguments :func:`main` was called with."""
    import shlex

    argv = getattr(a, "cli_argv", None)  # set by main(); a namespace parsed elsewhere falls back to sys.argv
    return " ".join(shlex.quote(x) for x in ["unlearn-gym", *(sys.argv[1:] if argv is None else argv)])


def cmd_tune(a: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from unlearn_gym.envs.instances import resolve_instances
    from unlearn_gym.tuning import search, summary

    instances = resolve_instances([a.instance]) if a.instance else resolve_instances(f"{a.set}:train")
    env_kwargs = json.loads(a.env_kwargs) if a.env_kwargs else None
    res = search(a.family, instances, a.seeds, a.trials, sampler_seed=a.sampler_seed, select_seeds=a.select_seeds,
                 top_k=a.top_k, env_kwargs=env_kwargs, log=None if a.quiet else print, ray=a.ray is not None,
                 ray_address=a.ray or None, workers=a.workers)
    b = res["budget"]
    print(f"{a.family} on {', '.join(instances)}: {', '.join(f'{k} {v:+.3f}' for k, v in res['params'].items())}"
          f" (mean outcome {res['value']:+.3f}; {b['search_episodes']} search + {b['selection_episodes']} selection"
          f" episodes, {res['wall_s']:.0f} s)")
    if a.out:
        Path(a.out).write_text(json.dumps({"command": _command(a), **summary(res)}, indent=1) + "\n")
        print(f"wrote {a.out}")
    return 0


#: The handler of every subcommand (their arguments: :mod:`unlearn_gym.cli_parser`).
COMMANDS: dict[str, Handler] = {
    "pretrain": cmd_pretrain,
    "instances": cmd_instances,
    "info": cmd_info,
    "train-classifier": cmd_train_classifier,
    "sample": cmd_sample,
    "ship": cmd_ship,
    "evaluate": cmd_evaluate,
    "unlearn": cmd_unlearn,
    "benchmark": cmd_benchmark,
    "evaluate-policy": cmd_evaluate_policy,
    "train-agent": cmd_train_agent,
    "tune": cmd_tune,
}


def build_parser() -> argparse.ArgumentParser:
    """The ``unlearn-gym`` parser: ``--version`` and every subcommand, each bound to its ``cmd_*`` handler."""
    from unlearn_gym.rl.train import add_arguments as add_agent_arguments  # stdlib only: no torch or SB3 import

    return make_parser(__doc__, COMMANDS, add_agent_arguments)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``unlearn-gym`` command; known errors print ``error: <message>`` and return 2.

    Known errors are ``ValueError`` (bad arguments; ``CheckpointError`` is one) and
    ``FileNotFoundError`` (``DataNotFoundError`` is one): the user fixes the input, so no traceback.

    An unknown argument is reported with the usage of its subcommand (argparse would show the
    top-level usage), and exits with status 2.

    :param argv: the arguments (default ``sys.argv[1:]``); sidecars record them as the command.
    :returns: the exit status.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        parser.subcommands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    args.cli_argv = argv
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
