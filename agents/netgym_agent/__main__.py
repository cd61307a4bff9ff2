"""The command line: ``python -m netgym_agent train|evaluate`` (also ``netgym-train``).

::

    python -m netgym_agent train agents/configs/cartpole_ppo.yaml --set seed=3
    python -m netgym_agent train --run-dir runs/cartpole_ppo-20250101-120000 --resume
    python -m netgym_agent evaluate runs/cartpole_ppo-20250101-120000 --model best

The envapi's URL and token come from ``--url``/``--token``, else
``$NETGYM_URL``/``$NETGYM_TOKEN``. Errors print one explanation, no traceback,
and exit with 1 (2 for a bad config or command line).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from netgym.errors import NetgymError
from netgym_agent.errors import ConfigError, RunDirError, explain
from netgym_agent.threads import limit_openmp_spinning

SIGPIPE_EXIT = 141  # as a command killed by SIGPIPE: its output was gone


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command ``argv`` asks for; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    limit_openmp_spinning()  # before anything loads torch
    try:
        if args.command == "train":
            return _train(args)
        return _evaluate(args)
    except (ConfigError, RunDirError) as exc:
        print(f"netgym-train: error: {exc}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        print("netgym-train: interrupted", file=sys.stderr, flush=True)
        return 130
    except NetgymError as exc:
        notes = "".join(f"\n{note}" for note in getattr(exc, "__notes__", ()))
        print(f"netgym-train: error: {exc}{notes}", file=sys.stderr, flush=True)
        return 1
    except BrokenPipeError:  # the output went to a pipe closed early (`| head -1`)
        _drop_output()
        return SIGPIPE_EXIT
    except OSError as exc:  # the run folder or a config file cannot be read or written
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"netgym-train: error{where}: {explain(exc)}", file=sys.stderr, flush=True)
        return 1


def _train(args: argparse.Namespace) -> int:
    from netgym_agent.trainer import TrainOptions, train

    status = train(
        TrainOptions(
            config_file=args.config,
            run_dir=args.run_dir,
            resume=args.resume,
            resume_latest=args.resume_latest,
            url=args.url,
            token=args.token,
            overrides=list(args.set),
        )
    )
    if status == SIGPIPE_EXIT:  # stopped because its output was gone (checkpoint saved)
        _drop_output()
    return status


def _drop_output() -> None:
    """Send what is left to /dev/null: flushing a closed pipe at exit would complain."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _evaluate(args: argparse.Namespace) -> int:
    from netgym_agent.evaluation import evaluate_saved

    result = evaluate_saved(
        args.run_dir,
        args.model,
        url=args.url,
        token=args.token,
        episodes=args.episodes,
        num_envs=args.num_envs,
        deterministic=args.deterministic,
        device=args.device,
        out=sys.stdout,
    )
    print(
        f"{args.model} model at step {result.step:,}: return {result.mean_return:.2f} "
        f"± {result.std_return:.2f} over {len(result.returns)} episodes{result.reconnect_note}"
    )
    print(json.dumps(result.to_record()))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netgym-train", description="Train SB3 agents on envs served by a netgym envapi."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train from a YAML config, or resume a run")
    train.add_argument("config", nargs="?", type=Path, help="YAML config (optional with --resume)")
    train.add_argument(
        "--run-dir", type=Path, help="the run folder (default: runs/<config>-<date>-<time>)"
    )
    train.add_argument(
        "--resume", action="store_true", help="continue --run-dir from its last checkpoint"
    )
    train.add_argument(
        "--resume-latest",
        action="store_true",
        help=(
            "continue the run in runs/ that CONFIG was used for last, unless it has finished, "
            "was made with another config (after --set) or is trained by another process "
            "now; else start a new run (a service that restarts keeps its run)"
        ),
    )
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set algo.hyperparams.n_steps=64 (repeatable)",
    )
    _server_arguments(train)

    evaluate = commands.add_parser("evaluate", help="evaluate a saved model of a run")
    evaluate.add_argument("run_dir", type=Path, help="the run folder")
    evaluate.add_argument(
        "--model",
        default="best",
        type=_model,
        help="best, final, latest (checkpoint) or a checkpoint folder (default: best)",
    )
    evaluate.add_argument(
        "--episodes", type=_positive, help="episodes to play (default: the run's eval.episodes)"
    )
    evaluate.add_argument(
        "--num-envs", type=_positive, help="envs in the session (default: the run's eval.num_envs)"
    )
    actions = evaluate.add_mutually_exclusive_group()
    actions.add_argument(
        "--stochastic",
        dest="deterministic",
        action="store_false",
        default=None,
        help="sample actions (default: as the run's eval.deterministic says)",
    )
    actions.add_argument(
        "--deterministic",
        dest="deterministic",
        action="store_true",
        default=None,
        help="take the most likely action (default: as the run's eval.deterministic says)",
    )
    evaluate.add_argument(
        "--device",
        type=_device,
        help="auto, cpu, cuda or cuda:N instead of the run's (default: the run's)",
    )
    _server_arguments(evaluate)
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _model(text: str) -> str:
    if text not in ("best", "final", "latest") and not Path(text).is_dir():
        raise argparse.ArgumentTypeError(
            f"expected best, final, latest or a checkpoint folder, got {text!r}"
        )
    return text


def _device(text: str) -> str:
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:N, got {text!r}")
    return text


def _url(text: str) -> str:
    if not re.fullmatch(r"https?://\S+", text):
        raise argparse.ArgumentTypeError(
            f"expected a URL with its scheme, e.g. http://{text.split('://')[-1]}, got {text!r}"
        )
    return text


def _server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", type=_url, help="the envapi (default: $NETGYM_URL or http://127.0.0.1:8000)"
    )
    parser.add_argument("--token", help="its access token (default: $NETGYM_TOKEN)")


if __name__ == "__main__":
    sys.exit(main())
