"""Shared, session-scoped fixtures: a tiny generated dataset, its features, a tiny trained run.

Everything is built once per test session under pytest's temp folder and never needs the
network. Tests that modify a dataset copy it first (:func:`copy_dataset`).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import keras_asc.tf_setup  # noqa: E402,F401  (tf_keras, never Keras 3; before TensorFlow)

TINY_CLIP_SECONDS = 2.0

#: In CI a skip is a failure (tests/skip_policy.py).
pytest_plugins = ["tests.skip_policy"]


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
    # one process: a spawned worker's start (librosa's first call alone takes ~2 s) costs more than
    # 140 tiny clips; test_feature_cache.py checks that workers compute identical features
    return build_feature_cache(tiny_dataset, tiny_work, config=cfg, workers=1, log=lambda *_: None)


def write_export_config(export: Path, cfg: dict) -> None:
    """Write an export's ``config.json`` as a (broken) export would write it: its sha256 recorded
    in the stage marker too, so only what the test changed is wrong (an edit is refused by itself)."""
    from keras_asc import artifacts

    artifacts.write_json(export / "config.json", cfg)
    marker = artifacts.read_json(export / artifacts.STAGE_MARKER)
    marker.setdefault("sha256", {})["config.json"] = artifacts.sha256_file(export / "config.json")
    artifacts.write_json(export / artifacts.STAGE_MARKER, marker)


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
    from keras_asc.training import train
    from keras_asc.training_config import TrainConfig

    run_dir = tmp_path_factory.mktemp("runs") / "tiny_resnet11"
    train(tiny_features, run_dir, config=TrainConfig(**TINY_TRAIN), log=lambda *_: None)
    return run_dir


@pytest.fixture(scope="session")
def tiny_export(tiny_run, tiny_dataset, tiny_work) -> Path:
    """``tiny_run`` exported to int8 (PTQ): returns the export folder."""
    from tflite_export.export import ExportConfig, export_run

    export_run(tiny_run, tiny_dataset, tiny_work, config=ExportConfig(calibration_size=40), log=lambda *_: None)
    return tiny_run / "export"


@pytest.fixture(scope="session")
def tiny_compressed_export(tiny_run, tiny_dataset, tiny_work, tmp_path_factory) -> Path:
    """``tiny_run`` clustered (2 fine-tuning epochs) and exported with 4-bit LUT weights."""
    from tflite_export.compression import CompressionConfig
    from tflite_export.export import ExportConfig, export_run

    out = tmp_path_factory.mktemp("lut") / "export"
    export_run(tiny_run, tiny_dataset, tiny_work, config=ExportConfig(
        calibration_size=40, export_dir=out, arena_probes={}, compression=CompressionConfig(bits=4, finetune_epochs=2)),
        log=lambda *_: None)
    return out


@pytest.fixture(scope="session")
def float_io_tflite() -> bytes:
    """A small conv net converted with float input and output (which the toolkit must refuse)."""
    import numpy as np
    import tensorflow as tf
    import tf_keras as keras

    inp = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Softmax()(keras.layers.Dense(3)(x)))
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    conv.representative_dataset = lambda: ([rng.normal(size=(1, 8, 8, 1)).astype(np.float32)] for _ in range(10))
    return bytes(conv.convert())


@pytest.fixture(scope="session")
def fc_tflite() -> bytes:
    """A tiny int8 conv + FULLY_CONNECTED net on random data (like tflite-micro's
    generate_test_models), on which LiteRT's reference FULLY_CONNECTED disagrees with TFLM
    for a few inputs in a thousand."""
    import numpy as np
    import tf_keras as keras

    from tflite_export.convert import convert_int8

    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 1))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inp)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(32, activation="relu")(x)
    x = keras.layers.Dense(10)(x)
    model = keras.Model(inp, keras.layers.Softmax()(x))
    return convert_int8(model, np.random.default_rng(0).normal(size=(50, 16, 16, 1)).astype(np.float32))


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory) -> tuple[Path, dict]:
    """``asc demo`` on the tiny dataset with a tiny model: (work folder, result)."""
    from asc_cli.demo import run_demo
    from asc_cli.stages import PipelineConfig
    from keras_asc import TrainConfig
    from tflite_export import ExportConfig

    work = tmp_path_factory.mktemp("demo")
    cfg = PipelineConfig(train=TrainConfig(model_overrides=(("width", 0.25),), epochs=4),
                         export=ExportConfig(calibration_size=40))
    return work, run_demo(work, size="tiny", cfg=cfg, log=lambda *_: None)


# ----------------------------------------------------------------------------- the fast lane
#: Fixtures whose first use builds firmware, runs QEMU, fine-tunes or runs the whole pipeline.
SLOW_FIXTURES = {"firmware_run", "host_program", "tiny_demo", "tiny_compressed_export", "windowed_run",
                 "windowed_export"}
#: Test modules whose every test compiles TFLM programs or runs them under QEMU.
SLOW_MODULES = {"test_firmware.py", "test_frontend.py", "test_icount.py", "test_pipeline.py",
                "test_every_model_converts.py"}
#: Single tests of over 8 s on a quiet 2-core machine, whose behaviour the fast lane also checks more
#: cheaply elsewhere (the fast lane's budget is 3 minutes; it took 2 min 52 s in a fresh clone).
SLOW_TESTS = {"test_qat_export_records_its_path", "test_disk_errors_name_the_file",
              "test_resume_continues_and_refuses_mismatch"}  # resume: also test_bad_input, test_nothing_lost


def pytest_collection_modifyitems(config, items):
    """Mark ``slow`` what needs the heavy fixtures or modules above, so that
    ``./dev.sh test -m "not slow"`` is the daily fast lane; CI runs everything."""
    for item in items:
        if (SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or item.path.name in SLOW_MODULES
                or item.originalname in SLOW_TESTS):
            item.add_marker(pytest.mark.slow)
