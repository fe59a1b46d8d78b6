"""keras_asc's public functions (``import keras_asc``; ``keras_asc.train(...)``): dataset, features,
training, evaluation and the model registry, each keyword-only, taking and returning typed records.
``asc make-dataset``, ``describe``, ``features``, ``train``, ``evaluate`` and ``models`` call these
and nothing else of keras_asc's stages.

TensorFlow is imported only by the functions that build or train a model (on their first call).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from keras_asc.audio import load_audio
from keras_asc.augment import DirFeatures, dir_feature_cache
from keras_asc.dataset import SCENE_LABELS, dataset_layout, describe, read_fold1, read_split, split_warnings
from keras_asc.evaluation import confusion_matrix, evaluate_run, format_scores, metrics_up_to_date
from keras_asc.feature_cache import FeatureSet, build_feature_cache
from keras_asc.features import FeatureConfig, log_mel
from keras_asc.model_registry import MODELS, model_names
from keras_asc.parallel import DEFAULT_WORKERS
from keras_asc.run_record import RunRecord, read_run_config
from keras_asc.training import check_run_folder as _check_run_folder
from keras_asc.training import finished_run_matches
from keras_asc.training import train as _train
from keras_asc.training_config import TrainConfig

__all__ = ["DatasetDescription", "ModelSummary", "make_dataset", "describe_dataset", "extract_features", "check_run_folder", "train",
           "evaluate", "format_scores", "read_run", "dataset_split", "clip_log_mel", "confusion_counts",
           "run_is_finished", "metrics_are_current", "extract_impulse_response_features", "list_models", "model_summary", "dataset_clip_seconds"]


@dataclasses.dataclass(frozen=True)
class DatasetDescription:
    """What ``asc describe`` prints of a dataset."""

    layout: str  # the layout's title (keras_asc.layouts)
    train_split_source: str | None  # the training subset's file when one was asked for, else None
    counts: str  # clips per split x device and per split x scene, printable
    warnings: tuple[str, ...]  # suspect but usable splits


@dataclasses.dataclass(frozen=True)
class ModelSummary:
    """One registered model built for one input: its size and cost."""

    name: str
    input_shape: tuple[int, int, int]  # (mel bands, frames, 1)
    trainable_params: int
    seed_params: int  # the seed paper's count at 128 x 288 (0: not in the paper)
    macs: int  # multiply-accumulates of one inference


def make_dataset(*, out_dir: Path, size: str = "demo", seed: int = 0, clip_seconds: float | None = None,
                 workers: int = DEFAULT_WORKERS, log=print) -> Path:
    """Write a generated dataset in the TAU layout into ``out_dir`` (``size``: ``tiny``, ``demo`` or a
    number of segments per scene as text); returns the dataset root. Refuses a folder it did not write."""
    from keras_asc.synth import make_dataset as _make  # heavy: the generator imports SciPy for its filters

    return Path(_make(Path(out_dir), size=size, seed=seed, clip_seconds=clip_seconds, workers=workers, log=log))


def dataset_clip_seconds(*, size: str) -> float:
    """The clip length in seconds of a generated dataset of ``size`` (``make_dataset``'s)."""
    from keras_asc.synth import resolve_size  # heavy: keras_asc.synth imports SciPy

    return resolve_size(size).clip_seconds


def describe_dataset(*, data_dir: Path, check_audio: bool = True, train_split: str | None = None) -> DatasetDescription:
    """Read ``data_dir``'s fold 1 (checking every audio file exists unless ``check_audio`` is False)
    and describe it: layout, clips per split x device and scene, warnings."""
    tables = read_fold1(Path(data_dir), check_audio=check_audio, train_split=train_split)
    return DatasetDescription(layout=dataset_layout(Path(data_dir)).title,
                              train_split_source=tables["train"].attrs["source"] if train_split else None,
                              counts=describe(tables), warnings=tuple(split_warnings(Path(data_dir), tables)))


def extract_features(*, data_dir: Path, work_dir: Path, config: FeatureConfig, train_split: str | None = None,
                     workers: int = DEFAULT_WORKERS, log=print) -> FeatureSet:
    """The log-mel feature cache of ``data_dir`` for ``config`` under ``work_dir/features/<key>/``,
    computed only if not already complete. Each clip's features are float32 of shape
    ``config``'s (n_mels, frames); :class:`FeatureSet` names the arrays and their labels."""
    return build_feature_cache(Path(data_dir), Path(work_dir), config=config, workers=workers, log=log,
                               train_split=train_split)


def check_run_folder(*, run_dir: Path, resume: bool = False) -> None:
    """Refuse ``run_dir`` as a new run's folder before any work: a folder holding a run is continued
    only with ``resume``, a folder of anything else never (:class:`keras_asc.training.RunExists`)."""
    _check_run_folder(Path(run_dir), resume=resume)


def train(*, features: FeatureSet, run_dir: Path, config: TrainConfig, resume: bool = False,
          workers: int = DEFAULT_WORKERS, log=print) -> RunRecord:
    """Train ``config.model`` on ``features``' train split into ``run_dir`` (model.keras,
    config.json, checkpoints/); ``resume`` continues a killed run. Returns the finished run's record."""
    _train(features, Path(run_dir), config=config, resume=resume, workers=workers, log=log)
    return read_run_config(Path(run_dir))


def evaluate(*, run_dir: Path, data_dir: Path, work_dir: Path, workers: int = DEFAULT_WORKERS,
             log=print) -> pd.DataFrame:
    """Score the run's model on the evaluate split; writes metrics.json/.csv, predictions.csv and
    confusion.png into ``run_dir``. Returns the score table, one row per group (overall, each device,
    each scene): columns group, name, clips (int), accuracy and log_loss (float), unseen_device (bool)."""
    return evaluate_run(Path(run_dir), Path(data_dir), Path(work_dir), workers=workers, log=log)


def list_models() -> list[str]:
    """The registered model names, sorted (:data:`keras_asc.model_registry.MODELS`; no TensorFlow)."""
    return model_names()


def model_summary(*, name: str, input_shape: tuple[int, int, int],
                  overrides: tuple[tuple[str, float], ...] = ()) -> ModelSummary:
    """Build registered model ``name`` for ``input_shape`` (mel bands, frames, 1) with builder
    ``overrides`` and count it. Raises ValueError when its pooling shrinks the input to nothing,
    TypeError when the builder does not take an override."""
    from keras_asc.models import build_model, count_macs, trainable_params  # heavy: tf_keras

    model = build_model(name, tuple(input_shape), **dict(overrides))
    return ModelSummary(name=name, input_shape=tuple(input_shape), trainable_params=trainable_params(model),
                        seed_params=MODELS[name].seed_params or 0, macs=count_macs(model))


def read_run(*, run_dir: Path, finished: bool = True) -> RunRecord:
    """The run in ``run_dir`` (its ``config.json``) as a record; with ``finished``, a run whose training
    never finished is refused, naming how far it got."""
    return read_run_config(Path(run_dir), finished=finished)


def dataset_split(*, data_dir: Path, split: str, check_audio: bool = True) -> pd.DataFrame:
    """One fold 1 split (``train`` or ``evaluate``) of ``data_dir``, one row per clip in file order:
    columns filename, scene_label, device, location, path, ... (keras_asc.dataset.TABLE_COLUMNS)."""
    return read_split(Path(data_dir), split, check_audio=check_audio)


def clip_log_mel(*, path: Path, config: FeatureConfig) -> np.ndarray:
    """One audio file's log-mel spectrogram as training computes it: float32 dB of shape
    (config.n_mels, config.n_frames), the audio padded or cropped to config.clip_seconds."""
    return log_mel(load_audio(Path(path), sample_rate=config.sample_rate, clip_seconds=config.clip_seconds),
                   config=config)


def confusion_counts(*, labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Clip counts (int64, 10 x 10): rows the true scene (index into ``SCENE_LABELS``), columns the
    predicted one; ``labels`` and ``predicted`` are int arrays of shape (clips,)."""
    return confusion_matrix(np.asarray(labels), np.asarray(predicted), len(SCENE_LABELS))


def extract_impulse_response_features(*, features: FeatureSet, folder: Path, copies: int, workers: int = DEFAULT_WORKERS,
                                      log=print) -> DirFeatures:
    """The log-mel features of ``copies`` copies of ``features``' training clips, each convolved with
    an impulse response of ``folder``'s WAVs (TrainConfig's ``dir_*`` fields), computed once into
    ``WORK/dir_features/<key>/``; training reads them when ``TrainConfig.dir_p`` is above 0."""
    return dir_feature_cache(features, folder=Path(folder), copies=copies, workers=workers, log=log)


def run_is_finished(*, run_dir: Path, config: TrainConfig, feature_key: str) -> bool:
    """Whether ``run_dir`` holds a finished run of ``config`` on the features ``feature_key`` (then
    :func:`train` need not run). A finished run of other settings is refused, never overwritten."""
    return finished_run_matches(Path(run_dir), config=config, feature_key=feature_key)


def metrics_are_current(*, run_dir: Path, data_dir: Path) -> bool:
    """Whether ``run_dir/metrics.json`` scores the run's current model on ``data_dir`` (then
    :func:`evaluate` need not run)."""
    return metrics_up_to_date(Path(run_dir), Path(data_dir))
