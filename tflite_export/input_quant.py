"""From log-mel values to the int8 input tensor: the one definition of the firmware's formula.

The formula exists twice and nowhere else: :func:`quantize_input` here (numpy, used by the
export's calibration check, the harness and the tests) and ``tflite_export/cc/asc_input_quant.h``
(:data:`C_HEADER`), the C++ the export copies beside ``model_input.h`` for the firmware. A test
compiles that file and checks that both give the same int8 on adversarial and real values.

For band ``b`` (0 .. n_mels-1) and frame ``t`` of a clip's log-mel ``x[b][t]`` (dB)::

    v = ((x[b][t] - mean[b]) / std[b]) / input_scale        float32, in this order
    q = round_half_away_from_zero(v) + input_zero_point      (C: lroundf)
    q = clamp(q, -128, 127)
    input[b * n_frames + t] = (int8_t) q                     tensor shape (1, n_mels, n_frames, 1)

``mean``/``std`` are the per-band statistics fitted on the training split; ``input_scale``
and ``input_zero_point`` are the model's own input quantization, read from the .tflite.
TFLite's reference QUANTIZE kernel rounds half away from zero too (``TfLiteRound``), so
``np.round`` (half to even) would disagree on exact ties. Rounding is computed exactly:
``floor(|v| + 0.5)`` in float32 is wrong for 0.49999997f (the sum rounds up to 1.0).
The C++ bounds ``v`` to +-512 before ``lroundf`` (any such value saturates anyway), which keeps
``lroundf`` defined for huge values; a NaN gives -128 there, while :func:`quantize_input` refuses
non-finite input.
"""
from __future__ import annotations

import dataclasses

import numpy as np

#: The C++ of the formula, a real header under ``tflite_export/cc/`` that the export copies beside
#: ``model_input.h``; the generated header defines ``kNumMels``, ``kNumFrames``, ``kFeatureMean``,
#: ``kFeatureStd``, ``kInputScale``, ``kInputZeroPoint`` and then includes it.
C_HEADER = "asc_input_quant.h"


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

    Implements ``QuantizeLogMel`` (:data:`C_HEADER`) exactly, in float32. Raises ``ValueError`` on non-finite
    input or a band count that does not match the normalization.
    """
    x = np.asarray(logmel, dtype=np.float32)
    if x.shape[-2] != len(quant.mean):
        raise ValueError(f"log-mel has {x.shape[-2]} bands, the model's normalization {len(quant.mean)}")
    if not np.isfinite(x).all():
        raise ValueError("log-mel contains NaN or infinite values; check the audio")
    mean = np.asarray(quant.mean, np.float32)[:, None]
    std = np.asarray(quant.std, np.float32)[:, None]
    # a huge (finite) x overflows v to +-inf; it saturates below like the C++ does
    with np.errstate(over="ignore", invalid="ignore"):
        v = ((x - mean) / std) / np.float32(quant.scale)
        whole = np.trunc(v)
        # v - trunc(v) is exact in float32, so the tie test is exact too
        rounded = whole + np.where(np.abs(v - whole) >= np.float32(0.5), np.sign(v), np.float32(0))
    q = np.clip(rounded.astype(np.float64) + quant.zero_point, -128, 127)
    return q.astype(np.int8)[..., None]


def dequantize_output(q: np.ndarray, *, scale: float, zero_point: int) -> np.ndarray:
    """int8 output -> float probabilities: ``(q - zero_point) * scale``."""
    return ((np.asarray(q, np.int32) - zero_point) * np.float32(scale)).astype(np.float32)
