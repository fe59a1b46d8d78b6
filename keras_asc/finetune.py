"""Fine-tuning a trained run's model, as the export's quantize-aware training and weight clustering
do: the public door to the training data and losses (:mod:`keras_asc.training_data`,
:mod:`keras_asc.training_losses`) for the stages after training.

:func:`finetune_config` is the run's training configuration for fine-tuning (mixup off, a lower
learning rate), :func:`finetune_batches` the augmented batches of the run's training split (as
training sees them), :func:`validation_data` the evaluate split as training validates on it, and
:func:`compile_for_training` compiles a model with the run's loss and metrics.
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


def finetune_batches(fs: FeatureSet, *, normalization: Normalization, config: TrainConfig, n_classes: int):
    """The ``tf.data`` pipeline of shuffled, augmented training batches of ``fs``'s train split,
    normalized with ``normalization`` (the run's): inputs ``(batch, n_mels, frames, 1)`` float32
    (``frames`` of a window when ``config`` has windows), targets ``(batch, n_classes)`` float32."""
    x, y = load_split(fs, "train", normalization=normalization)
    return make_train_pipeline(x, y, config=config, n_classes=n_classes)


def validation_data(fs: FeatureSet, *, normalization: Normalization, config: TrainConfig, n_classes: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``fs``'s evaluate split as training validates on it: inputs ``(n, n_mels, frames, 1)``
    float32 (every window of each clip when ``config`` has windows) and one-hot targets
    ``(n, n_classes)`` float32."""
    x, y = load_split(fs, "evaluate", normalization=normalization)
    windows = config.windows(x.shape[2])
    if windows is not None:
        x, y = split_windows(x, window=windows.frames, hop=windows.hop), np.repeat(y, windows.per_clip)
    return x, np.eye(n_classes, dtype=np.float32)[y]


def compile_for_training(model, config: TrainConfig) -> None:
    """Compile ``model`` (a tf_keras model) with ``config``'s optimizer, loss and metrics, as
    training does (:func:`keras_asc.training_losses.compile_model`)."""
    compile_model(model, config)
