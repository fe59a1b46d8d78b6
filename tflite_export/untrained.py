"""An architecture's int8 flatbuffer before any training, for sizing it against a microcontroller
(``asc fit``'s feasibility check): the registry model with seeded random weights, converted with
random calibration inputs (normalized log-mel is about N(0, 1)), its TFLM arena as the export's
header would size it, and the export's RAM estimate for given features and window.

A LUT-compressed architecture (``lut_bits``) has its kernels folded into the convolutions and
snapped to ``2**lut_bits`` levels per tensor (what clustering leaves), converted with one scale per
tensor and LUT-compressed (:mod:`tflite_export.compression`), so its flatbuffer has the decode
operators and tables a trained one would; only the values differ.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from keras_asc.features import FeatureConfig
from tflite_export.arena import measure_arena, recommended_arena
from tflite_export.compression import fold_batchnorm, lut_compress
from tflite_export.convert import convert_int8
from tflite_export.export import _ram_figures
from tflite_export.flatbuffer import read_model_shared

#: Random calibration inputs of an untrained model.
CALIBRATION_INPUTS = 16


@dataclasses.dataclass(frozen=True)
class UntrainedModel:
    """An architecture's int8 flatbuffer with random weights, and its size."""

    data: bytes  # the .tflite: int8 input (1, mel bands, frames, 1), int8 scores (1, 10)
    params: int  # trainable parameters of the Keras model
    macs_per_inference: int


def untrained_int8_model(*, model: str, input_shape: tuple[int, int], overrides: tuple[tuple[str, float], ...] = (),
                         lut_bits: int | None = None, seed: int = 0) -> UntrainedModel:
    """Registry ``model`` built for ``input_shape`` (mel bands, frames) with builder ``overrides``
    and weights seeded by ``seed``, converted to int8 (LUT-compressed to ``lut_bits`` index bits
    when given). Raises ValueError when the input shrinks to nothing in the network."""
    import keras_asc.tf_setup  # noqa: F401  (tf_keras, never Keras 3; before TensorFlow)
    import tf_keras as keras  # heavy: loads TensorFlow

    from keras_asc.models import build_model, count_macs, trainable_params  # heavy: the builders import tf_keras

    mels, frames = input_shape
    keras.utils.set_random_seed(seed)
    net = build_model(model, (mels, frames, 1), **dict(overrides))
    params, macs = trainable_params(net), count_macs(net)
    calibration = np.random.default_rng(seed).normal(size=(CALIBRATION_INPUTS, mels, frames, 1)).astype(np.float32)
    if lut_bits is None:
        return UntrainedModel(data=convert_int8(net, calibration), params=params, macs_per_inference=macs)
    net = fold_batchnorm(net)
    for layer in net.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            weights = layer.get_weights()
            weights[0] = snap_to_levels(weights[0], levels=2 ** lut_bits)
            layer.set_weights(weights)
    data = lut_compress(convert_int8(net, calibration, per_channel_weights=False), bits=lut_bits)
    return UntrainedModel(data=data, params=params, macs_per_inference=macs)


def snap_to_levels(w: np.ndarray, *, levels: int) -> np.ndarray:
    """``w`` (any shape, float32) with every value replaced by the nearest of ``levels`` evenly
    spaced values between its minimum and maximum (what clustering leaves: few distinct values)."""
    lo, hi = float(w.min()), float(w.max())
    if hi == lo:
        return w
    grid = np.linspace(lo, hi, levels, dtype=np.float32)
    return grid[np.abs(w[..., None] - grid).argmin(axis=-1)].astype(np.float32)


def header_arena_bytes(*, path: Path) -> int:
    """The tensor arena the export's header would give the .tflite at ``path``: TFLM Python's
    measured minimum plus the export's margin (:func:`tflite_export.arena.recommended_arena`)."""
    return recommended_arena(measure_arena(Path(path)).min_bytes)


def firmware_ram_estimate(*, path: Path, features: FeatureConfig, window_frames: int | None, arena_bytes: int) -> int:
    """The export's RAM estimate of a firmware running the .tflite at ``path`` on ``features`` (one
    inference per ``window_frames`` frames; None: the whole clip): the arena, the front end's
    state, static data and stack (``ExportResult.ram.needed_bytes`` of an export of it)."""
    model = read_model_shared(Path(path).read_bytes())
    return _ram_figures(model, features, arena_bytes=arena_bytes, budget=None, window_frames=window_frames).needed_bytes
