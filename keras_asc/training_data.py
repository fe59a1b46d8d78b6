"""The training data: a split's normalized features in memory (:func:`load_split`) and the
tf.data pipeline of augmented batches (:func:`make_train_pipeline`: random crops, device EQ,
Freq-MixStyle, mixup, device impulse responses)."""
from __future__ import annotations

import math

import keras_asc.tf_setup  # noqa: F401  (tf_keras, never Keras 3; before TensorFlow)

import numpy as np

from keras_asc.augment import random_freq_mixstyle
from keras_asc.feature_cache import FeatureSet
from keras_asc.features import Normalization
from keras_asc.training_config import TrainConfig


def load_split(fs: FeatureSet, split: str, *, normalization: Normalization | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Normalized features ``(n, n_mels, n_frames, 1)`` float32 and labels ``(n,)`` int64.

    ``normalization`` defaults to the cache's own (fitted on its train split); evaluation of a
    trained run passes the run's, so the statistics always come from the training data.
    """
    norm = normalization or fs.normalization
    raw = fs.features(split)
    x = np.empty((*raw.shape, 1), np.float32)
    for i in range(0, raw.shape[0], 256):
        x[i:i + 256, ..., 0] = norm.apply(raw[i:i + 256])
    return x, fs.table(split)["label"].to_numpy(np.int64)


def _device_eq(x, strength: float, tf):
    """Random smooth per-band gain (a device's frequency response is additive in log-mel),
    plus a random overall level; one draw per example. ``x``: (batch, mels, frames, 1)."""
    b, mels = tf.shape(x)[0], tf.shape(x)[1]
    pos = tf.linspace(0.0, math.pi, mels)[None, :]
    curve = tf.zeros((b, mels))
    for k in (1, 2, 3):
        amp = tf.random.uniform((b, 1), -strength, strength) / k
        phase = tf.random.uniform((b, 1), 0.0, 2 * math.pi)
        curve += amp * tf.cos(k * pos + phase)
    curve += tf.random.uniform((b, 1), -strength, strength)
    return x + curve[:, :, None, None]


def _random_crop(x, frames: int, tf):
    """A random window of ``frames`` frames of each example (its own offset); ``x``: (batch, mels, frames, 1)."""
    b, total = tf.shape(x)[0], tf.shape(x)[2]
    starts = tf.random.uniform((b,), 0, total - frames + 1, dtype=tf.int32)
    idx = starts[:, None] + tf.range(frames)[None, :]
    return tf.gather(x, idx, axis=2, batch_dims=1)


def _mixup(x, y, alpha: float, tf):
    b = tf.shape(x)[0]
    g1 = tf.random.gamma((b,), alpha)
    g2 = tf.random.gamma((b,), alpha)
    lam = g1 / (g1 + g2)
    perm = tf.random.shuffle(tf.range(b))
    lx = lam[:, None, None, None]
    ly = lam[:, None]
    return lx * x + (1 - lx) * tf.gather(x, perm), ly * y + (1 - ly) * tf.gather(y, perm)


def make_train_pipeline(x: np.ndarray, y: np.ndarray, *, config: TrainConfig, n_classes: int,
                        teacher_logits: np.ndarray | None = None, dir_features: np.ndarray | None = None,
                        normalization: Normalization | None = None):
    """tf.data pipeline: shuffled index batches -> gather from the in-memory array ->
    augmentation as batched graph ops -> prefetch. Gathering by index avoids embedding a
    multi-GB array in the graph; the parallel map and prefetch keep both cores busy.

    ``x``: ``(n, mels, frames, 1)`` normalized float32, ``y``: ``(n,)`` labels. With
    ``teacher_logits`` ``(n, n_classes)`` the targets are ``(batch, 2 * n_classes)``: one-hot labels,
    then the teachers' logits (:func:`make_loss` splits them). With ``dir_features``
    ``(n, copies, mels, frames)`` (un-normalized dB, :func:`keras_asc.augment.dir_feature_cache`) and
    ``normalization``, each clip is replaced with probability ``config.dir_p`` by a copy picked uniformly.
    Then, per batch: random crop (windows), device EQ, Freq-MixStyle, mixup.
    """
    import tensorflow as tf  # TensorFlow takes seconds to import: only when training

    shape = x.shape[1:]
    eye = np.eye(n_classes, dtype=np.float32)
    width = 2 * n_classes if teacher_logits is not None else n_classes
    copies = 1 if dir_features is None else dir_features.shape[1]
    dir_p = config.dir_p if dir_features is not None else 0.0

    def gather(idx, use, which):
        order = np.argsort(idx)
        idx, use, which = idx[order], use[order], which[order]
        bx = x[idx]
        if dir_p > 0 and use.any():
            sel = np.flatnonzero(use)
            bx[sel, ..., 0] = normalization.apply(np.stack([dir_features[i, k] for i, k in zip(idx[sel], which[sel])]))
        by = eye[y[idx]]
        if teacher_logits is not None:
            by = np.concatenate([by, teacher_logits[idx].astype(np.float32)], axis=1)
        return bx, by

    def load(idx):
        n = tf.shape(idx)[0]
        use = tf.random.uniform((n,)) < dir_p
        which = tf.random.uniform((n,), 0, copies, dtype=tf.int64)
        bx, by = tf.numpy_function(gather, [idx, use, which], (tf.float32, tf.float32))
        bx.set_shape((None, *shape))
        by.set_shape((None, width))
        return bx, by

    crops = 1 if config.window_frames is None else -(-x.shape[2] // config.window_frames)
    ds = tf.data.Dataset.range(len(x) * crops)
    if crops > 1:
        ds = ds.map(lambda i: i % len(x))  # each clip `crops` times per epoch, each time its own crop
    ds = ds.shuffle(len(x) * crops, seed=config.seed, reshuffle_each_iteration=True)
    ds = ds.batch(config.batch_size).map(load, num_parallel_calls=tf.data.AUTOTUNE)
    if config.window_frames is not None:
        ds = ds.map(lambda a, b: (_random_crop(a, config.window_frames, tf), b), num_parallel_calls=tf.data.AUTOTUNE)
    if config.device_aug > 0:
        ds = ds.map(lambda a, b: (_device_eq(a, config.device_aug, tf), b), num_parallel_calls=tf.data.AUTOTUNE)
    if config.freq_mixstyle_p > 0:
        ds = ds.map(lambda a, b: (random_freq_mixstyle(a, p=config.freq_mixstyle_p, alpha=config.freq_mixstyle_alpha), b),
                    num_parallel_calls=tf.data.AUTOTUNE)
    if config.mixup_alpha > 0:
        ds = ds.map(lambda a, b: _mixup(a, b, config.mixup_alpha, tf), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
