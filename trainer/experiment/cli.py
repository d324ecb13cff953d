"""`trainer experiment CONFIG`: the real-vs-synthetic experiment on the command line.

    trainer experiment thermal.yaml            # config keys: trainer/experiment/config.py
    trainer experiment thermal.yaml --force    # replace <runs_dir>/<name>/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from edge.errors import run_command


def cmd_experiment(args: argparse.Namespace) -> int:
    from trainer.experiment.config import load_experiment_config
    from trainer.experiment.run import run_experiment

    cfg = load_experiment_config(args.config)
    doc = run_experiment(cfg, force=args.force, progress=not args.no_progress, source=Path(args.config))
    failed = [a["arm"] for a in doc["arms"] if a["status"] != "ok"]
    # A failed arm is a result (reported with its reason), not a crash: exit 1, not the user-error 2.
    return 1 if failed else 0


def add_experiment_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("experiment", help="real labels vs label-free training, every arm scored on one real "
                                          "test split (report: experiment.md/.png/.json)")
    p.add_argument("config", help="experiment YAML: name, runs_dir, data, negatives, test_data, "
                                  "test_negatives, split, arms, budget, pipeline (see trainer/experiment/config.py)")
    p.add_argument("--force", action="store_true", help="replace an existing experiment folder of that name")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_experiment)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trainer")
    add_experiment_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
