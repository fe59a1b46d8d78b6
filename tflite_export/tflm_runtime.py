"""TFLM's Python runtime (the ``tflite-micro`` wheel), the truth every stage runs: one class for
the export (arena measurement, the compression check) and the harness
(:mod:`firmware_harness.validation.runners` registers it as the truth), so the interpreter is set up in one
place.
"""
from __future__ import annotations

import os
import sys
import tempfile

import numpy as np

from tflite_export.model_check import check_model


class TflmRunner:
    """One TFLM interpreter on ``model`` (flatbuffer bytes) with an arena of ``arena_bytes``.

    ``preserve=True`` keeps every intermediate tensor (TFLM's ``kPreserveAllTensors``: needs a
    larger arena, see :func:`firmware_harness.validation.runners.preserve_arena_bytes`) for :meth:`tensor`.
    The model check (:func:`tflite_export.model_check.check_model`, cached by content) runs
    before any interpreter is built: a model it refuses raises its ``ModelCheckError`` naming
    ``source``. Construction raises ``RuntimeError``/``ValueError`` when the arena is too small
    for the model; some too-small arenas crash TFLM instead, so use an arena measured by
    :func:`tflite_export.arena.measure_arena`.
    """

    name = "tflm"

    def __init__(self, model: bytes, *, arena_bytes: int, preserve: bool = False,
                 source: str = "the model given to TFLM"):
        from tflite_micro.python.tflite_micro import runtime  # heavy: the TFLM interpreter package

        check_model(model, source=source)

        config = (runtime.InterpreterConfig.kPreserveAllTensors if preserve
                  else runtime.InterpreterConfig.kAllocationRecording)
        self._it = runtime.Interpreter.from_bytes(model, arena_size=int(arena_bytes), intrepreter_config=config)
        self.input_details = self._it.get_input_details(0)

    def run(self, x: np.ndarray) -> np.ndarray:
        """One int8 input of the model's input shape -> its int8 output (a copy)."""
        self._it.set_input(x, 0)
        self._it.invoke()
        return np.array(self._it.get_output(0), copy=True)

    def tensor(self, index: int) -> np.ndarray:
        """Tensor ``index`` (flatbuffer numbering) of the last run; only with ``preserve=True``."""
        d = self._it.GetTensor(int(index), 0)
        return np.asarray(d["tensor_data"]).reshape(d["shape"])

    def allocation_report(self) -> str:
        """What TFLM's ``print_allocations`` writes (to the C-level stderr, captured here)."""
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as tmp:
            os.dup2(tmp.fileno(), 2)
            try:
                self._it.print_allocations()
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            tmp.seek(0)
            return tmp.read().decode(errors="replace")
