"""Shared, session-scoped fixtures: a tiny generated dataset, its features, a tiny trained run.

Everything is built once per test session under pytest's temp folder and never needs the
network. Tests that modify a dataset copy it first (:func:`copy_dataset`).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TINY_CLIP_SECONDS = 2.0


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    from keras_asc.synth import make_dataset

    return make_dataset(tmp_path_factory.mktemp("data") / "tiny", size="tiny", seed=0, workers=2,
                        log=lambda *_: None)


@pytest.fixture(scope="session")
def tiny_work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("work")


@pytest.fixture(scope="session")
def tiny_features(tiny_dataset, tiny_work):
    from keras_asc.feature_cache import build_feature_cache
    from keras_asc.features import FeatureConfig

    cfg = FeatureConfig.seed(clip_seconds=TINY_CLIP_SECONDS)
    return build_feature_cache(tiny_dataset, tiny_work, config=cfg, workers=2, log=lambda *_: None)


def copy_dataset(src: Path, dst: Path) -> Path:
    """A copy of a dataset whose CSVs can be edited; audio files are hard-linked (cheap)."""
    shutil.copytree(src, dst, copy_function=os.link)
    for csv in [dst / "meta.csv", *(dst / "evaluation_setup").glob("*.csv")]:
        data = csv.read_bytes()
        csv.unlink()
        csv.write_bytes(data)
    return dst


#: A tiny training configuration: ResNet11 at quarter width learns the tiny set in seconds.
TINY_TRAIN = dict(model="resnet11", model_overrides=(("width", 0.25),), epochs=25, batch_size=16,
                  learning_rate=3e-3, seed=0)


@pytest.fixture(scope="session")
def tiny_run(tiny_features, tmp_path_factory) -> Path:
    """A trained tiny ResNet11 run folder (model.keras, config.json, ...)."""
    from keras_asc.training import TrainConfig, train

    run_dir = tmp_path_factory.mktemp("runs") / "tiny_resnet11"
    train(tiny_features, run_dir, config=TrainConfig(**TINY_TRAIN), log=lambda *_: None)
    return run_dir
