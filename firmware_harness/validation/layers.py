"""Layer-by-layer comparison: the first operator whose output differs between TFLM and
another runtime (LiteRT's reference kernels, or a firmware build's tensor dump).

Each side gives every intermediate tensor by the flatbuffer's tensor index (TFLM's
``kPreserveAllTensors``, LiteRT's ``experimental_preserve_all_tensors``, the firmware program's
``--dump``). :func:`first_divergence` walks the operators in execution order; the first whose
output tensor differs is the divergence. For a localizable runner of the registry
(:mod:`firmware_harness.validation.runners`) its type is looked up in the entry's known differences (LiteRT's
reference kernels: :data:`~firmware_harness.validation.runners.KNOWN_DIFFERENCES`); anything else (and any firmware difference at all)
means a bug in the model, the harness or a runtime, and validation fails.

LiteRT's default (optimized, XNNPACK-delegated) interpreter is compared on outputs only: a
delegate computes whole subgraphs itself, so its intermediate tensors are not observable.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Mapping

import numpy as np

from firmware_harness.validation import runners
from firmware_harness.validation.runners import LOCALIZABLE, REGISTRY, make_runner, truth_runner, with_role
from tflite_export.flatbuffer import describe_tensors, operator_names, read_model_shared


def explain(op: str, known: Mapping[str, str] | None = None) -> tuple[bool, str]:
    """(known, explanation) of a first divergence at ``op``; ``known`` defaults to
    :data:`~firmware_harness.validation.runners.KNOWN_DIFFERENCES` (LiteRT's reference kernels)."""
    known = runners.KNOWN_DIFFERENCES if known is None else known
    if op in known:
        return True, known[op]
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


def first_divergence(fb, truth: Callable[[int], np.ndarray], other: Callable[[int], np.ndarray], *,
                     runner: str, known: Mapping[str, str] | None = None) -> Divergence | None:
    """The first operator (execution order) of parsed model ``fb`` whose output tensor differs
    between ``truth(index)`` and ``other(index)``; None if every operator output is identical."""
    tensors = describe_tensors(fb)
    for k, (name, op) in enumerate(zip(operator_names(fb), fb.subgraphs[0].operators)):
        for out in op.outputs:
            a = truth(out).astype(np.int64)
            b = other(out).astype(np.int64).reshape(a.shape)
            if np.array_equal(a, b):
                continue
            t = tensors[out]
            is_known, why = explain(name, known)
            ins = tuple((tensors[i].scales[0] if tensors[i].scales else 0.0,
                         tensors[i].zero_points[0] if tensors[i].zero_points else 0)
                        for i in op.inputs if i >= 0 and not tensors[i].constant)
            return Divergence(
                runner=runner, op_index=k, op=name, tensor=t.name, shape=t.shape, input_quant=ins,
                output_quant=(t.scales[0] if t.scales else 0.0, t.zero_points[0] if t.zero_points else 0),
                elements_differing=int(np.count_nonzero(a != b)), max_abs_diff_lsb=int(np.abs(a - b).max()),
                known=is_known, explanation=why)
    return None


class LayerComparer:
    """Holds preserve-all-tensors interpreters of the truth and of ``runner``, a
    :data:`~firmware_harness.validation.runners.LOCALIZABLE` runner of the registry (default: the first)."""

    def __init__(self, model: bytes, *, arena_bytes: int, runner: str | None = None):
        self.runner = runner or with_role(LOCALIZABLE)[0]
        if REGISTRY[self.runner].role != LOCALIZABLE:
            raise ValueError(f"{self.runner}: not a localizable runner; its intermediate tensors are not observable")
        self._truth = make_runner(truth_runner(), model, arena_bytes=arena_bytes, preserve=True)
        self._other = make_runner(self.runner, model, arena_bytes=arena_bytes, preserve=True)
        self._fb = read_model_shared(model)

    def first_divergence(self, x: np.ndarray) -> Divergence | None:
        """Run ``x`` through both; None if every operator output is identical."""
        self._truth.run(x)
        self._other.run(x)
        return first_divergence(self._fb, self._truth.tensor, self._other.tensor, runner=self.runner,
                                known=REGISTRY[self.runner].known_differences())
