"""From log-mel values to the int8 input tensor: the one definition of the firmware's formula.

Everything that feeds an int8 model uses :func:`quantize_input`: the export's calibration
check, the generated header's documented formula (:data:`FORMULA_C`), the harness and the
tests. Two copies of this formula are the classic source of "works on PC, wrong on chip".

For band ``b`` (0 .. n_mels-1) and frame ``t`` of a clip's log-mel ``x[b][t]`` (dB)::

    v = ((x[b][t] - mean[b]) / std[b]) / input_scale        float32, in this order
    q = round_half_away_from_zero(v) + input_zero_point      (C: lroundf)
    q = clamp(q, -128, 127)
    input[b * n_frames + t] = (int8_t) q                     tensor shape (1, n_mels, n_frames, 1)

``mean``/``std`` are the per-band statistics fitted on the training split; ``input_scale``
and ``input_zero_point`` are the model's own input quantization, read from the .tflite.
TFLite's reference QUANTIZE kernel rounds half away from zero too (``TfLiteRound``), so
``np.round`` (half to even) would disagree on exact ties.
"""
from __future__ import annotations

import dataclasses

import numpy as np

FORMULA_C = """\
// int8 input from log-mel x[b][t] (dB), b < kNumMels, t < kNumFrames, all float32:
//   float v = ((x[b][t] - kFeatureMean[b]) / kFeatureStd[b]) / kInputScale;
//   long q = lroundf(v) + kInputZeroPoint;      // round half away from zero
//   if (q < -128) q = -128; if (q > 127) q = 127;
//   input->data.int8[b * kNumFrames + t] = (int8_t)q;   // tensor (1, kNumMels, kNumFrames, 1)
"""


@dataclasses.dataclass(frozen=True)
class InputQuantization:
    """Everything needed to turn log-mel into the model's int8 input."""

    mean: tuple[float, ...]  # per mel band, dB
    std: tuple[float, ...]
    scale: float  # the model's input tensor scale
    zero_point: int  # the model's input tensor zero point

    def __post_init__(self) -> None:
        if not (np.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"input scale must be a positive finite number, got {self.scale}")
        if not -128 <= self.zero_point <= 127:
            raise ValueError(f"int8 zero point out of range: {self.zero_point}")
        if len(self.mean) != len(self.std) or min(self.std) <= 0:
            raise ValueError("normalization mean/std malformed (lengths differ or std <= 0)")

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std), "scale": self.scale,
                "zero_point": self.zero_point}

    @classmethod
    def from_dict(cls, d: dict) -> "InputQuantization":
        return cls(tuple(map(float, d["mean"])), tuple(map(float, d["std"])), float(d["scale"]),
                   int(d["zero_point"]))


def quantize_input(logmel: np.ndarray, *, quant: InputQuantization) -> np.ndarray:
    """Log-mel ``(..., n_mels, n_frames)`` float (dB) -> int8 ``(..., n_mels, n_frames, 1)``.

    Implements :data:`FORMULA_C` exactly, in float32. Raises ``ValueError`` on non-finite
    input or a band count that does not match the normalization.
    """
    x = np.asarray(logmel, dtype=np.float32)
    if x.shape[-2] != len(quant.mean):
        raise ValueError(f"log-mel has {x.shape[-2]} bands, the model's normalization {len(quant.mean)}")
    if not np.isfinite(x).all():
        raise ValueError("log-mel contains NaN or infinite values; check the audio")
    mean = np.asarray(quant.mean, np.float32)[:, None]
    std = np.asarray(quant.std, np.float32)[:, None]
    v = ((x - mean) / std) / np.float32(quant.scale)
    q = np.sign(v) * np.floor(np.abs(v) + np.float32(0.5)) + quant.zero_point
    return np.clip(q, -128, 127).astype(np.int8)[..., None]


def dequantize_output(q: np.ndarray, *, scale: float, zero_point: int) -> np.ndarray:
    """int8 output -> float probabilities: ``(q - zero_point) * scale``."""
    return ((np.asarray(q, np.int32) - zero_point) * np.float32(scale)).astype(np.float32)
