"""The interpreters the harness compares: one small protocol (:class:`Runner`) and a registry
(:data:`REGISTRY`) that says each one's role, so adding an interpreter touches this file only:
validation (:func:`firmware_harness.validation.export_validation.compare_runtimes`), the layer localization
(:class:`firmware_harness.validation.layers.LayerComparer`) and the reports loop over the registry by role
(:data:`TRUTH`, :data:`LOCALIZABLE`, :data:`OUTPUTS_ONLY`) and never name an interpreter.

* :class:`TflmRunner` (:mod:`tflite_export.tflm_runtime`): TFLM itself (the ``tflite-micro`` package's Python runtime, TFLM's C++
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
from typing import Callable, Mapping, Protocol

import numpy as np

from tflite_export.flatbuffer import describe_tensors, read_model_shared
from tflite_export.model_check import check_model
from tflite_export.tflm_runtime import TflmRunner  # the truth, shared with tflite_export


class Runner(Protocol):
    name: str

    def run(self, x: np.ndarray) -> np.ndarray:
        """One int8 input of the model's shape -> its int8 output."""

    def tensor(self, index: int) -> np.ndarray:
        """Tensor ``index`` of the last run (only with ``preserve=True``)."""


class LiteRTRunner:
    def __init__(self, model: bytes, *, kernels: str, preserve: bool = False, source: str = "the model"):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType  # heavy: loaded only when LiteRT runs

        check_model(model, source=source)  # XNNPACK aborts on what the check refuses (cached by content)

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
    activations = sum(t.activation_bytes for t in describe_tensors(read_model_shared(model)) if not t.constant)
    return int(arena_bytes + activations + (64 << 10))


#: What a runner's results mean to the harness.
TRUTH = "truth"  # its outputs define what the microcontroller outputs
LOCALIZABLE = "localizable"  # compared with the truth on every clip; intermediate tensors observable
OUTPUTS_ONLY = "outputs only"  # compared on outputs, never a failure, never localized


#: Why LiteRT's default optimized interpreter may differ from TFLM; reported, never a failure.
#: First diverging op of LiteRT's reference kernels -> why it legitimately differs from TFLM.
#: Kept small on purpose; a divergence at any other op fails validation.
KNOWN_DIFFERENCES: dict[str, str] = {
    "FULLY_CONNECTED": (
        "LiteRT's reference int8 FULLY_CONNECTED requantizes the int32 accumulator through a "
        "float multiplier (since TF 2.20), while TFLM keeps the integer multiplier-and-shift of "
        "the TFLite quantization spec; the two round differently on a few inputs per thousand "
        "(measured with ai-edge-litert 2.3.0 vs tflite-micro 0.dev20261023), by one output LSB "
        "before later layers spread it"),
}


OPTIMIZED_KERNELS_NOTE = (
    "LiteRT's default interpreter (optimized builtin kernels and the XNNPACK delegate) is not "
    "bit-exact with the reference kernels by design: its fixed-point paths requantize and round "
    "differently, by one LSB on some elements. Reported for information, never a failure; its "
    "intermediate tensors are not observable inside the delegate, so it is not localized.")


@dataclasses.dataclass(frozen=True)
class RunnerSpec:
    name: str
    role: str
    description: str
    make: Callable[[bytes, int, bool], Runner]  # (model, arena bytes, preserve all tensors)
    # LOCALIZABLE: first diverging op -> why it legitimately differs from the truth (read at each
    # localization); a first divergence at any other op fails validation
    known_differences: Callable[[], Mapping[str, str]] = dict
    note: str = ""  # OUTPUTS_ONLY: why its outputs may differ, printed when they do


def _tflm(model: bytes, arena_bytes: int, preserve: bool) -> Runner:
    arena = preserve_arena_bytes(model, arena_bytes) if preserve else arena_bytes
    return TflmRunner(model, arena_bytes=arena, preserve=preserve)


def _litert_reference_known() -> Mapping[str, str]:
    return KNOWN_DIFFERENCES  # read when asked (tests replace it)


REGISTRY: dict[str, RunnerSpec] = {r.name: r for r in (
    RunnerSpec("tflm", TRUTH, "TFLM's Python runtime (tflite-micro), reference kernels", _tflm),
    RunnerSpec("litert_ref", LOCALIZABLE, "LiteRT with BUILTIN_REF kernels",
               lambda m, a, p: LiteRTRunner(m, kernels="reference", preserve=p),
               known_differences=_litert_reference_known),
    RunnerSpec("litert_opt", OUTPUTS_ONLY, "LiteRT's default interpreter (optimized kernels, XNNPACK)",
               lambda m, a, p: LiteRTRunner(m, kernels="optimized", preserve=p), note=OPTIMIZED_KERNELS_NOTE),
)}
RUNNERS = tuple(REGISTRY)


def with_role(role: str) -> tuple[str, ...]:
    """The registered runners of ``role``, in registry order."""
    return tuple(n for n, r in REGISTRY.items() if r.role == role)


def truth_runner() -> str:
    """The one :data:`TRUTH` runner: its outputs define what the microcontroller outputs."""
    (name,) = with_role(TRUTH)
    return name


def documented_differences() -> dict[str, str]:
    """Every localizable runner's known differences (first diverging op -> why), for the report."""
    return {op: why for n in with_role(LOCALIZABLE) for op, why in REGISTRY[n].known_differences().items()}


def compared_runners() -> tuple[str, ...]:
    """Every runner compared with the truth (localizable and outputs-only), in registry order."""
    return tuple(n for n in RUNNERS if REGISTRY[n].role != TRUTH)


def make_runner(name: str, model: bytes, *, arena_bytes: int, preserve: bool = False) -> Runner:
    """``arena_bytes`` is the normal (non-preserving) arena; preserve mode enlarges it for TFLM."""
    if name not in REGISTRY:
        raise ValueError(f"unknown runner {name!r}; one of {RUNNERS}")
    spec = REGISTRY[name]
    if preserve and spec.role == OUTPUTS_ONLY:
        raise ValueError(f"{name}: intermediate tensors are only comparable with the reference kernels")
    return spec.make(model, arena_bytes, preserve)
