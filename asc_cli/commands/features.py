"""``asc features``: compute and cache the log-mel features of a dataset."""
from __future__ import annotations

import argparse
from pathlib import Path

import keras_asc
from asc_cli.options import _feature_config, add_data_args, add_feature_args, add_workers_arg


def add_parser(sub) -> None:
    s = sub.add_parser("features", help="compute and cache log-mel features for train and evaluate")
    add_data_args(s)
    s.add_argument("--out", required=True, help="work folder; the cache goes to OUT/features/<key>/")
    add_workers_arg(s)
    add_feature_args(s)
    s.set_defaults(func=run)


def run(a: argparse.Namespace) -> None:
    fs = keras_asc.extract_features(data_dir=Path(a.data), work_dir=Path(a.out), config=_feature_config(a),
                                    workers=a.workers, train_split=a.train_split)
    print(f"features: {fs.path}  shape per clip {tuple(fs.config['shape'])}  "
          f"clips {fs.config['clips']}")
