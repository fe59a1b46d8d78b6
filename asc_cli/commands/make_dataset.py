"""``asc make-dataset``: a generated dataset in the TAU layout."""
from __future__ import annotations

import argparse
from pathlib import Path

import keras_asc
from asc_cli.options import _dataset_size, add_workers_arg, clip_seconds_float, seed_int


def add_parser(sub) -> None:
    s = sub.add_parser("make-dataset", help="write a generated dataset in the TAU 2020 Mobile layout")
    s.add_argument("out_dir")
    s.add_argument("--size", type=_dataset_size, default="demo", help="tiny (tests), demo (default) or segments per scene")
    s.add_argument("--seed", type=seed_int, default=0)
    s.add_argument("--clip-seconds", type=clip_seconds_float, default=None, help="override the clip length")
    add_workers_arg(s)
    s.set_defaults(func=run)


def run(a: argparse.Namespace) -> None:
    keras_asc.make_dataset(out_dir=Path(a.out_dir), size=a.size, seed=a.seed, clip_seconds=a.clip_seconds,
                           workers=a.workers)
