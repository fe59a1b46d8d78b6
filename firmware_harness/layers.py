"""Layer-by-layer comparison: the first operator whose output differs between TFLM and LiteRT.

Both runtimes keep every intermediate tensor (TFLM's ``kPreserveAllTensors``, LiteRT's
``experimental_preserve_all_tensors``), addressed by the flatbuffer's tensor index. Operators
are walked in execution order; the first whose output tensor differs is the divergence. Its
type is looked up in :data:`KNOWN_DIFFERENCES`; anything else means a bug in the model, the
harness or a runtime, and validation fails.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from firmware_harness.runners import make_runner
from tflite_export.flatbuffer import describe_tensors, operator_names, read_model

#: (runner, first diverging op) -> why the outputs legitimately differ from TFLM's.
#: Kept small on purpose; a divergence of LiteRT's reference kernels at any other op fails.
KNOWN_DIFFERENCES: dict[tuple[str, str], str] = {
    ("litert_ref", "FULLY_CONNECTED"): (
        "LiteRT's reference int8 FULLY_CONNECTED requantizes the int32 accumulator through a "
        "float multiplier (since TF 2.20), while TFLM keeps the integer multiplier-and-shift of "
        "the TFLite quantization spec; the two round differently on a few inputs per thousand "
        "(measured with ai-edge-litert 2.3.0 vs tflite-micro 0.dev20261023), by one output LSB "
        "before later layers spread it"),
    ("litert_opt", "*"): (
        "LiteRT's optimized kernels are not bit-exact with the reference kernels by design: "
        "their fixed-point paths (e.g. ruy/gemmlowp requantization) round differently, by one "
        "LSB on some elements; reported for information, never a failure"),
}


def explain(runner: str, op: str) -> tuple[bool, str]:
    """(known, explanation) of a first divergence at ``op`` between ``runner`` and TFLM."""
    for key in ((runner, op), (runner, "*")):
        if key in KNOWN_DIFFERENCES:
            return True, KNOWN_DIFFERENCES[key]
    return False, "not a documented kernel difference"


@dataclasses.dataclass(frozen=True)
class Divergence:
    runner: str
    op_index: int
    op: str
    tensor: str
    shape: tuple[int, ...]
    input_quant: tuple[tuple[float, int], ...]  # (scale, zero point) of each non-constant input
    output_quant: tuple[float, int]
    elements_differing: int
    max_abs_diff_lsb: int
    known: bool
    explanation: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class LayerComparer:
    """Holds a preserve-all-tensors TFLM interpreter and one of LiteRT's, for repeated use."""

    def __init__(self, model: bytes, *, other: str, arena_bytes: int):
        self.other_name = other
        self._tflm = make_runner("tflm", model, arena_bytes=arena_bytes, preserve=True)
        self._other = make_runner(other, model, arena_bytes=arena_bytes, preserve=True)
        fb = read_model(model)
        self._ops = operator_names(fb)
        self._tensors = describe_tensors(fb)
        self._graph = fb.subgraphs[0].operators

    def first_divergence(self, x: np.ndarray) -> Divergence | None:
        """Run ``x`` through both; None if every operator output is identical."""
        self._tflm.run(x)
        self._other.run(x)
        for k, (name, op) in enumerate(zip(self._ops, self._graph)):
            for out in op.outputs:
                a = self._tflm.tensor(out).astype(np.int64)
                b = self._other.tensor(out).astype(np.int64).reshape(a.shape)
                if np.array_equal(a, b):
                    continue
                t = self._tensors[out]
                known, why = explain(self.other_name, name)
                ins = tuple((self._tensors[i].scales[0] if self._tensors[i].scales else 0.0,
                             self._tensors[i].zero_points[0] if self._tensors[i].zero_points else 0)
                            for i in op.inputs if i >= 0 and not self._tensors[i].constant)
                return Divergence(
                    runner=self.other_name, op_index=k, op=name, tensor=t.name, shape=t.shape,
                    input_quant=ins, output_quant=(t.scales[0] if t.scales else 0.0,
                                                   t.zero_points[0] if t.zero_points else 0),
                    elements_differing=int(np.count_nonzero(a != b)),
                    max_abs_diff_lsb=int(np.abs(a - b).max()), known=known, explanation=why)
        return None
