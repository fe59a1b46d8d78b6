"""The interpreters the harness compares: one small protocol (:class:`Runner`) and a registry
(:data:`REGISTRY`) that says each one's role, so adding an interpreter touches this file only.

* :class:`TflmRunner`: TFLM itself (the ``tflite-micro`` package's Python runtime, TFLM's C++
  reference kernels built for the host). Its outputs are the truth.
* :class:`LiteRTRunner` with ``kernels="reference"``: ai-edge-litert with ``BUILTIN_REF``
  kernels; ``kernels="optimized"``: the interpreter as a PC user gets it by default (op
  resolver ``AUTO``: builtin optimized kernels plus the default XNNPACK delegate).

Each runner takes one int8 input of the model's shape and returns the int8 output; with
``preserve=True`` :meth:`tensor` gives every intermediate tensor by flatbuffer index, for the
layer-by-layer comparison (TFLM and the reference kernels only: inside a delegate the
intermediate tensors are not computed by the interpreter and cannot be compared).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Protocol

import numpy as np


class Runner(Protocol):
    name: str

    def run(self, x: np.ndarray) -> np.ndarray:
        """One int8 input of the model's shape -> its int8 output."""

    def tensor(self, index: int) -> np.ndarray:
        """Tensor ``index`` of the last run (only with ``preserve=True``)."""


class TflmRunner:
    name = "tflm"

    def __init__(self, model: bytes, *, arena_bytes: int, preserve: bool = False):
        from tflite_micro.python.tflite_micro import runtime

        config = runtime.InterpreterConfig.kPreserveAllTensors if preserve else runtime.InterpreterConfig.kAllocationRecording
        self._it = runtime.Interpreter.from_bytes(model, arena_size=int(arena_bytes), intrepreter_config=config)
        self.input_details = self._it.get_input_details(0)

    def run(self, x: np.ndarray) -> np.ndarray:
        self._it.set_input(x, 0)
        self._it.invoke()
        return np.array(self._it.get_output(0), copy=True)

    def tensor(self, index: int) -> np.ndarray:
        d = self._it.GetTensor(int(index), 0)
        return np.asarray(d["tensor_data"]).reshape(d["shape"])


class LiteRTRunner:
    def __init__(self, model: bytes, *, kernels: str, preserve: bool = False):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolver = {"reference": OpResolverType.BUILTIN_REF, "optimized": OpResolverType.AUTO}[kernels]
        if preserve and kernels != "reference":
            raise ValueError("intermediate tensors are only comparable with the reference kernels")
        self.name = "litert_ref" if kernels == "reference" else "litert_opt"
        self._it = Interpreter(model_content=model, experimental_op_resolver_type=resolver,
                               experimental_preserve_all_tensors=preserve, num_threads=1)
        self._it.allocate_tensors()
        self._in = self._it.get_input_details()[0]["index"]
        self._out = self._it.get_output_details()[0]["index"]

    def run(self, x: np.ndarray) -> np.ndarray:
        self._it.set_tensor(self._in, x)
        self._it.invoke()
        return np.array(self._it.get_tensor(self._out), copy=True)

    def tensor(self, index: int) -> np.ndarray:
        return np.array(self._it.get_tensor(int(index)), copy=True)


def preserve_arena_bytes(model: bytes, arena_bytes: int) -> int:
    """Arena for TFLM's preserve-all-tensors mode: no activation buffer is reused, so it
    needs room for every activation at once on top of the normal plan."""
    from tflite_export.flatbuffer import describe_tensors, read_model

    activations = sum(t.activation_bytes for t in describe_tensors(read_model(model)) if not t.constant)
    return int(arena_bytes + activations + (64 << 10))


#: What a runner's results mean to the harness.
TRUTH = "truth"  # its outputs define what the microcontroller outputs
LOCALIZABLE = "localizable"  # compared with the truth on every clip; intermediate tensors observable
OUTPUTS_ONLY = "outputs only"  # compared on outputs, never a failure, never localized


@dataclasses.dataclass(frozen=True)
class RunnerSpec:
    name: str
    role: str
    description: str
    make: Callable[[bytes, int, bool], Runner]  # (model, arena bytes, preserve all tensors)


def _tflm(model: bytes, arena_bytes: int, preserve: bool) -> Runner:
    arena = preserve_arena_bytes(model, arena_bytes) if preserve else arena_bytes
    return TflmRunner(model, arena_bytes=arena, preserve=preserve)


REGISTRY: dict[str, RunnerSpec] = {r.name: r for r in (
    RunnerSpec("tflm", TRUTH, "TFLM's Python runtime (tflite-micro), reference kernels", _tflm),
    RunnerSpec("litert_ref", LOCALIZABLE, "LiteRT with BUILTIN_REF kernels",
               lambda m, a, p: LiteRTRunner(m, kernels="reference", preserve=p)),
    RunnerSpec("litert_opt", OUTPUTS_ONLY, "LiteRT's default interpreter (optimized kernels, XNNPACK)",
               lambda m, a, p: LiteRTRunner(m, kernels="optimized", preserve=p)),
)}
RUNNERS = tuple(REGISTRY)


def make_runner(name: str, model: bytes, *, arena_bytes: int, preserve: bool = False) -> Runner:
    """``arena_bytes`` is the normal (non-preserving) arena; preserve mode enlarges it for TFLM."""
    if name not in REGISTRY:
        raise ValueError(f"unknown runner {name!r}; one of {RUNNERS}")
    spec = REGISTRY[name]
    if preserve and spec.role == OUTPUTS_ONLY:
        raise ValueError(f"{name}: intermediate tensors are only comparable with the reference kernels")
    return spec.make(model, arena_bytes, preserve)
