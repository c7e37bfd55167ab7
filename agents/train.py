"""Train an RL agent that steers SISS unlearning (Stable-Baselines3 / sb3-contrib), in either protocol.

    python -m agents.train --algo ppo --env SISSUnlearnMicro-v0 --instance micro-heavy-scale-b8-h30
    python -m agents.train --algo sac --env SISSUnlearnMicro-v0 --instances default:train
    python -m agents.train --algo ppo --instance micro-heavy-scale-b8-h30 --protocol online --set gamma=0.95
    tensorboard --logdir runs/agents

The script of the checkout; ``unlearn-gym train-agent`` is the same from an installed package. The
settings are the fields of :class:`unlearn_gym.rl.train.Args` (one ``--flag`` each); training, the
final run(s) and every output are :func:`unlearn_gym.rl.train.train` (its docstring lists the
protocols and the run folder); the hyperparameter files are ``unlearn_gym/rl/hyperparams/<algo>.yml``.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from unlearn_gym.rl import train as rl_train
from unlearn_gym.rl.train import Args, add_arguments, args_from_namespace, train

PROG = "python -m agents.train"


def parse_args(argv: list[str] | None = None) -> Args:
    """:class:`~unlearn_gym.rl.train.Args` from the command line (help: the training module's docstring).

    :param argv: arguments (default ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(prog=PROG, description=rl_train.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    return args_from_namespace(add_arguments(parser).parse_args(argv))


def main(argv: list[str] | None = None) -> int:
    """Train; bad settings print ``error: ...`` and return 2.

    :param argv: arguments (default ``sys.argv[1:]``).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    try:
        train(args, command=" ".join([PROG, *(shlex.quote(a) for a in argv)]))
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
