"""A bring-your-own int8 ``.tflite`` as the harness runs it: its int8 I/O tensors, refusals, constants.

:func:`read_model_file` refuses what the harness cannot run, each refusal an :class:`AnyModelError`
subclass naming the file and the tensor or operator: a float (non-int8) input or output
(:class:`FloatModelError`), an operator the pinned TFLM's ``MicroMutableOpResolver`` lacks
(:class:`UnsupportedOperatorError`), a dynamic shape (:class:`DynamicShapeError`), several inputs or
outputs or a non-batch-1 or per-channel I/O tensor (:class:`ModelIoError`). Validation (:mod:`firmware_harness.validation.model_validation`), the
generated C sources (:mod:`firmware_harness.builds.model_sources`) and the firmware check
(:mod:`firmware_harness.firmware.model_firmware`) take the :class:`ModelFile` it returns.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from firmware_harness.model_source import ModelSource, tflite_file
from keras_asc import artifacts
from keras_asc.errors import AscError
from tflite_export.flatbuffer import (
    TFLM_MUTABLE_RESOLVER_METHODS,
    TFLM_OPS_NOT_BUILT,
    ModelCheckError,
    describe_tensors,
    io_tensors,
    operator_names,
    read_model_shared,
)

VALIDATE_STAGE = "validate-model"  # the folder `asc validate MODEL.tflite` writes
FIRMWARE_STAGE = "firmware-model"  # the folder `asc firmware MODEL.tflite` writes
DEFAULT_RANDOM_INPUTS = 20
GENERATOR = "asc firmware"
SOURCE_FILES = ("model_data.cc", "model_data.h", "model_settings.h")
ARENA_MARGIN_TEXT = "a margin of max(1 KiB, 10 %) for allocator alignment and kernel scratch buffers, rounded up to 16"
TRUTH = "tflite-micro Python runtime (TFLM reference kernels)"
PYTHON_NEED = "tflite-micro Python (reference kernels)"  # the arena need every model has measured


# ----------------------------------------------------------------------------- refusals
class AnyModelError(AscError, ValueError):
    """A .tflite, or its ``--inputs`` file, that the harness cannot take as it is; the message
    names the file and says what to change."""


class FloatModelError(AnyModelError):
    """The model's input or output tensor is not int8."""


class UnsupportedOperatorError(AnyModelError):
    """The model uses an operator the pinned TFLM's MicroMutableOpResolver lacks."""


class DynamicShapeError(AnyModelError):
    """A tensor's shape_signature has -1 beyond the batch dimension."""


class ModelIoError(AnyModelError):
    """Not exactly one input and one output, batch 1, each with one scale and zero point."""



# ----------------------------------------------------------------------------- the model
@dataclasses.dataclass(frozen=True)
class IoTensor:
    """The model's int8 input or output tensor: real = scale * (q - zero_point)."""

    name: str
    shape: tuple[int, ...]  # batch 1 first, as the flatbuffer stores it
    scale: float
    zero_point: int

    @property
    def elements(self) -> int:
        return int(np.prod(self.shape))


@dataclasses.dataclass(frozen=True)
class ModelFile:
    """A .tflite the harness can run (:func:`read_model_file`); held in memory, never written."""

    path: Path
    data: bytes
    ops: tuple[str, ...]  # distinct operator names, in first-use order
    input: IoTensor
    output: IoTensor

    @property
    def sha256(self) -> str:
        return artifacts.sha256_bytes(self.data)


def _refuse_operators(path: Path, ops: list[str]) -> None:
    unknown = sorted({o for o in ops if o not in TFLM_MUTABLE_RESOLVER_METHODS})
    if not unknown:
        return
    not_built = [o for o in unknown if o in TFLM_OPS_NOT_BUILT]
    lacking = [o for o in unknown if o not in TFLM_OPS_NOT_BUILT]
    parts = []
    if lacking:
        parts.append(f"operator(s) {lacking} are not among the {len(TFLM_MUTABLE_RESOLVER_METHODS)} operators the "
                     "pinned TFLM's MicroMutableOpResolver registers (tflite-micro archive, "
                     "micro_mutable_op_resolver.h), so no TFLM firmware can run this model")
    if not_built:
        methods = ", ".join(TFLM_OPS_NOT_BUILT[o] for o in not_built)
        parts.append(f"operator(s) {not_built} are in TFLM's resolver ({methods}) but registered without a "
                     "default kernel argument, which this harness's firmware builds do not select")
    raise UnsupportedOperatorError(
        f"{path}: refused: {'; '.join(parts)}. Replace the layer that produces them with operators TFLM has (the "
        "list is TFLM_MUTABLE_RESOLVER_METHODS in tflite_export/flatbuffer.py) and convert the model again")


def read_model_file(model: Path | ModelSource | ModelFile) -> ModelFile:
    """Read ``model`` (a path is a .tflite of its own, :func:`firmware_harness.model_source.tflite_file`;
    a :class:`~firmware_harness.model_source.ModelSource` is used as resolved, its bytes read once;
    a :class:`ModelFile` is returned as it is) and refuse what the harness cannot run (one
    :class:`AnyModelError` subclass per reason, naming the file and the tensor or operator).

    A ``-1`` in the first dimension of a shape_signature whose shape is 1 is accepted: it is the
    converter's mark of an unspecified batch, and TFLM and LiteRT run the stored shape (batch 1);
    a ``-1`` anywhere else is a dynamic shape, refused."""
    if isinstance(model, ModelFile):
        return model
    source = model if isinstance(model, ModelSource) else tflite_file(Path(model))
    path, data = source.path, source.data
    try:
        fb = read_model_shared(data)
    except ModelCheckError as e:
        raise AnyModelError(f"{path}: {e}") from None
    graph = fb.subgraphs[0]  # exactly one: the model check of the source refused any other count
    tensors = describe_tensors(fb)
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        names = [tensors[i].name for i in graph.inputs], [tensors[i].name for i in graph.outputs]
        raise ModelIoError(
            f"{path}: refused: {len(graph.inputs)} input tensor(s) {names[0]} and {len(graph.outputs)} output "
            f"tensor(s) {names[1]}; the firmware program feeds one input tensor and reads one output tensor per "
            "inference. Convert a model with exactly one input and one output")
    (inp,), (out,) = io_tensors(fb)
    for role, t in (("input", inp), ("output", out)):
        if t.dtype != "INT8":
            raise FloatModelError(
                f"{path}: refused: its {role} tensor '{t.name}' is {t.dtype}, not INT8: a float model, or one "
                f"with float {role}, needs float pre/post-processing that the int8 firmware path does not have. "
                "Convert it fully to int8 (TFLiteConverter with optimizations=[DEFAULT], a representative dataset, "
                "supported_ops=[TFLITE_BUILTINS_INT8], inference_input_type and inference_output_type tf.int8)")
    ops = operator_names(fb)
    _refuse_operators(path, ops)
    for i, t in enumerate(graph.tensors):
        sig = [int(v) for v in t.shapeSignature] if t.shapeSignature is not None else []
        shape = tensors[i].shape
        dynamic = [k for k, v in enumerate(sig) if v == -1 and not (k == 0 and shape[:1] == (1,))]
        if dynamic:
            raise DynamicShapeError(
                f"{path}: refused: tensor '{tensors[i].name}' has a dynamic shape (shape_signature {sig}, -1 in "
                f"dimension(s) {dynamic}); TFLM plans every tensor's memory once, for fixed shapes. Convert the "
                "model with every dimension but the batch fixed (a concrete input shape)")
    for role, t in (("input", inp), ("output", out)):
        if not t.shape or t.shape[0] != 1:
            raise ModelIoError(f"{path}: refused: its {role} tensor '{t.name}' has shape {list(t.shape)}; the harness "
                               "runs batch-1 models (first dimension 1). Convert the model with batch size 1")
        if len(t.scales) != 1 or len(t.zero_points) != 1:
            raise ModelIoError(f"{path}: refused: its {role} tensor '{t.name}' has {len(t.scales)} scales; an int8 "
                               "input or output needs one (per-tensor) scale and zero point")
    io = [IoTensor(name=t.name, shape=tuple(t.shape), scale=float(t.scales[0]), zero_point=int(t.zero_points[0]))
          for t in (inp, out)]
    return ModelFile(path=path, data=data, ops=tuple(dict.fromkeys(ops)), input=io[0], output=io[1])


def files_read_by_stage(model: ModelFile, inputs_path: Path | None) -> tuple[Path, ...]:
    """The files a stage on ``model`` reads (its outputs may never replace them): the model, the inputs file."""
    return (model.path,) + ((Path(inputs_path),) if inputs_path is not None else ())



def io_text_lines(model: str, sha256: str, ops: tuple[str, ...], inp: IoTensor, out: IoTensor, nbytes: int) -> list[str]:
    return [f"Model: {model}, {nbytes:,d} bytes, sha256 {sha256}; operators: {', '.join(ops)}.",
            f"Input '{inp.name}': int8 {list(inp.shape)}, scale {inp.scale:g}, zero point {inp.zero_point}. "
            f"Output '{out.name}': int8 {list(out.shape)}, scale {out.scale:g}, zero point {out.zero_point}."]
