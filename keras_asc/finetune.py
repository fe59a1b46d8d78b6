"""Fine-tuning a trained run's model, as the export's quantize-aware training and weight clustering
do: the public door to the training data and losses (:mod:`keras_asc.training_data`,
:mod:`keras_asc.training_losses`) for the stages after training.

:func:`finetune_config` is the run's training configuration for fine-tuning (mixup off, a lower
learning rate), :func:`finetune_batches` the augmented batches of the run's training split (as
training sees them), :func:`validation_data` the evaluate split as training validates on it, and
:func:`compile_for_training` compiles a model with the run's loss and metrics.

:func:`holdout_split` sets a deterministic, scene-stratified part of the *training* split aside
(quantize-aware training chooses its epoch and compares itself with PTQ on it, never on the
evaluate split that is scored); ``finetune_batches(rows=...)`` and :func:`holdout_data` are the two
parts.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from keras_asc.feature_cache import FeatureSet
from keras_asc.features import Normalization
from keras_asc.training_config import TrainConfig
from keras_asc.training_data import load_split, make_train_pipeline
from keras_asc.training_losses import compile_model
from keras_asc.windows import split_windows

#: fine-tuning runs at the run's learning rate divided by this (QAT; clustering's default)
FINETUNE_LEARNING_RATE_DIVISOR = 10.0


def finetune_config(train_config: TrainConfig, *, seed: int,
                    learning_rate_divisor: float = FINETUNE_LEARNING_RATE_DIVISOR) -> TrainConfig:
    """``train_config`` for fine-tuning its trained model: no mixup, ``seed``, and the learning rate
    divided by ``learning_rate_divisor``."""
    return dataclasses.replace(train_config, mixup_alpha=0.0, seed=seed,
                               learning_rate=train_config.learning_rate / learning_rate_divisor)


@dataclasses.dataclass(frozen=True)
class HoldoutSplit:
    """Rows of a run's training split (positions in ``fs.table("train")``), in two disjoint parts."""

    fit_rows: np.ndarray  # (n_fit,) int64, ascending: what fine-tuning trains on
    holdout_rows: np.ndarray  # (n_holdout,) int64, ascending: what it is judged on


def holdout_split(labels: np.ndarray, *, fraction: float, seed: int) -> HoldoutSplit:
    """Set ``fraction`` of the clips of each scene aside, chosen by ``seed`` alone (same labels,
    fraction and seed -> same rows). ``labels``: ``(n,)`` int scene labels of the training split.

    Each scene with at least two clips gives ``max(1, round(fraction * clips))`` of them, and keeps at
    least one for fine-tuning; a scene with one clip keeps it. Raises ``ValueError`` for a
    fraction outside (0, 1) or when nothing is set aside."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the held-out fraction must be in (0, 1), got {fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    held = []
    for scene in np.unique(labels):  # sorted: the draw order does not depend on the table's order
        rows = np.flatnonzero(labels == scene)
        if len(rows) >= 2:
            n = min(len(rows) - 1, max(1, int(round(fraction * len(rows)))))
            held.append(rng.permutation(rows)[:n])
    if not held:
        raise ValueError("no scene has two training clips: nothing can be held out")
    holdout = np.sort(np.concatenate(held)).astype(np.int64)
    return HoldoutSplit(fit_rows=np.setdiff1d(np.arange(len(labels), dtype=np.int64), holdout),
                        holdout_rows=holdout)


def finetune_batches(fs: FeatureSet, *, normalization: Normalization, config: TrainConfig, n_classes: int,
                     rows: np.ndarray | None = None):
    """The ``tf.data`` pipeline of shuffled, augmented training batches of ``fs``'s train split (only
    its ``rows``, positions ``(m,)`` int, when given), normalized with ``normalization`` (the run's):
    inputs ``(batch, n_mels, frames, 1)`` float32 (``frames`` of a window when ``config`` has windows),
    targets ``(batch, n_classes)`` float32."""
    x, y = load_split(fs, "train", normalization=normalization)
    if rows is not None:
        x, y = x[rows], y[rows]
    return make_train_pipeline(x, y, config=config, n_classes=n_classes)


def holdout_data(fs: FeatureSet, *, rows: np.ndarray, normalization: Normalization, config: TrainConfig,
                 n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` (positions ``(m,)`` int) of ``fs``'s train split as :func:`validation_data` gives the
    evaluate split: inputs ``(m * windows, n_mels, frames, 1)`` float32, one-hot targets float32."""
    x, y = load_split(fs, "train", normalization=normalization)
    return _windowed(x[rows], y[rows], config=config, n_classes=n_classes)


def validation_data(fs: FeatureSet, *, normalization: Normalization, config: TrainConfig, n_classes: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``fs``'s evaluate split as training validates on it: inputs ``(n, n_mels, frames, 1)``
    float32 (every window of each clip when ``config`` has windows) and one-hot targets
    ``(n, n_classes)`` float32."""
    x, y = load_split(fs, "evaluate", normalization=normalization)
    return _windowed(x, y, config=config, n_classes=n_classes)


def _windowed(x: np.ndarray, y: np.ndarray, *, config: TrainConfig, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    windows = config.windows(x.shape[2])
    if windows is not None:
        x, y = split_windows(x, window=windows.frames, hop=windows.hop), np.repeat(y, windows.per_clip)
    return x, np.eye(n_classes, dtype=np.float32)[y]


def compile_for_training(model, config: TrainConfig) -> None:
    """Compile ``model`` (a tf_keras model) with ``config``'s optimizer, loss and metrics, as
    training does (:func:`keras_asc.training_losses.compile_model`)."""
    compile_model(model, config)
