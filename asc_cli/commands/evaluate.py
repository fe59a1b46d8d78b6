"""``asc evaluate``: accuracy and log loss overall, per device, per scene."""
from __future__ import annotations

import argparse
from pathlib import Path

import keras_asc
from asc_cli.options import add_workers_arg


def add_parser(sub) -> None:
    s = sub.add_parser("evaluate", help="accuracy and log loss overall, per device, per scene")
    s.add_argument("run_dir")
    s.add_argument("--data", required=True)
    s.add_argument("--work", default="work")
    add_workers_arg(s)
    s.set_defaults(func=run)


def run(a: argparse.Namespace) -> None:
    scores = keras_asc.evaluate(run_dir=Path(a.run_dir), data_dir=Path(a.data), work_dir=Path(a.work),
                                workers=a.workers)
    print(keras_asc.format_scores(scores))
    print(f"evaluate: wrote metrics.json, metrics.csv, predictions.csv, confusion.png in {a.run_dir}")
