"""``asc train``: train a registered model on cached log-mel features."""
from __future__ import annotations

import argparse
from pathlib import Path

import keras_asc
from asc_cli.options import _feature_config, add_data_args, add_feature_args, add_workers_arg
from asc_cli.run_options import _parse_overrides, add_train_args, check_run_options, recipe_options, train_config_from_args


def add_parser(sub) -> None:
    s = sub.add_parser("train", help="train a registered model on cached log-mel features")
    add_data_args(s)
    s.add_argument("--out", required=True, help="run folder (model.keras, config.json, checkpoints/)")
    s.add_argument("--work", default="work", help="feature cache folder (default ./work)")
    s.add_argument("--resume", action="store_true", help="continue a killed run in --out")
    add_workers_arg(s)
    add_feature_args(s)
    add_train_args(s)
    s.set_defaults(func=run)


def run(a: argparse.Namespace) -> None:
    features = _feature_config(a)
    recipe = recipe_options(a)
    check_run_options(models=[a.model], overrides=_parse_overrides(a.model_arg), feature_configs=[features],
                      windows=[a.window_frames], window_hop=a.window_hop, teachers=recipe.get("teachers", ()),
                      dir_folder=recipe.get("dir_folder"))  # before the TrainConfig, which refuses them with less
    config = train_config_from_args(a, recipe=recipe)
    keras_asc.check_run_folder(run_dir=Path(a.out), resume=a.resume)  # before the features are computed
    fs = keras_asc.extract_features(data_dir=Path(a.data), work_dir=Path(a.work), config=features,
                                    workers=a.workers, train_split=a.train_split)
    keras_asc.train(features=fs, run_dir=Path(a.out), config=config, resume=a.resume, workers=a.workers)
