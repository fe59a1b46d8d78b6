"""A windowed model's clip decision from its windows' int8 outputs: the one definition.

Like :mod:`tflite_export.input_quant`, the rule exists twice and nowhere else:
:func:`accumulate_windows` here (numpy, used by the harness) and
``tflite_export/cc/asc_clip_accumulator.h`` (:data:`C_HEADER`), the C++ the export copies beside
``model_settings.h``; a test compiles that file and checks that both give the same sums and
decisions.

Every window's output has the same scale and zero point, so the mean of the windows'
probabilities is ``scale * (sum_w q_w[k] / n - zero_point)``: an exact int32 sum of the int8
outputs carries the whole decision. The clip's class is the index of the largest sum (the lowest
index on a tie); its probability estimate is ``kOutputScale * (sum / n - kOutputZeroPoint)``.
Training's float evaluation combines the same way (:func:`keras_asc.windows.combine_windows`);
the alternative, the softmax of the mean pre-softmax scores, is measured beside it in the run's
``metrics.json``.
"""
from __future__ import annotations

import numpy as np

#: The C++ of the rule, a real header under ``tflite_export/cc/`` that the export copies; a windowed
#: export's ``model_settings.h`` defines kNumClasses, kOutputScale and kOutputZeroPoint and then
#: includes it.
C_HEADER = "asc_clip_accumulator.h"


def accumulate_windows(outputs: np.ndarray, *, windows_per_clip: int) -> np.ndarray:
    """Windows' int8 outputs ``(n * k, classes)`` (clip-major) -> int32 sums ``(n, classes)``."""
    q = np.asarray(outputs)
    if q.dtype != np.int8:
        raise ValueError(f"window outputs must be int8, got {q.dtype}")
    return q.astype(np.int32).reshape(-1, windows_per_clip, q.shape[-1]).sum(axis=1, dtype=np.int32)


def clip_decisions(sums: np.ndarray) -> np.ndarray:
    """The class of each clip: the largest sum, the lowest index on a tie (``np.argmax``)."""
    return np.asarray(sums).argmax(axis=1)


def clip_probabilities(sums: np.ndarray, *, windows_per_clip: int, scale: float, zero_point: int) -> np.ndarray:
    """The mean of the windows' dequantized probabilities, ``(n, classes)`` float32."""
    mean = np.asarray(sums, np.float32) / np.float32(windows_per_clip)
    return (np.float32(scale) * (mean - np.float32(zero_point))).astype(np.float32)
