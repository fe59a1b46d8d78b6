"""The one model check every command runs before any interpreter sees a ``.tflite``.

:func:`check_model` parses the flatbuffer (:func:`tflite_export.flatbuffer.read_model_shared`)
and checks what TFLM's C++ trusts without checking, so that a damaged or hand-edited model is
refused with one paragraph naming the file, the tensor or operator (index and name) and what is
wrong, instead of crashing TFLM (signal 11 or an abort), LiteRT or XNNPACK, or running on
garbage:

* structure: the schema version, exactly one subgraph, at least one operator, one input and one
  output; every opcode index, operator input/output index (``-1`` is an omitted optional input),
  subgraph input/output index and buffer index in range; every tensor type one TFLM can allocate;
  every shape non-negative, of a size TFLM's 32-bit counts hold, and with elements if an operator
  uses it; every constant tensor's data exactly as long as its shape and type say (the
  ``TFLM_DECODE`` inputs of LUT-compressed models excepted: their metadata, index bits and
  value tables are checked instead); no buffer stored outside the flatbuffer's vector
  (``offset``/``size``, the >2 GB form) or in an external buffer, which TFLM does not read; no
  operator writing to a constant or the model's input; every tensor a builtin operator reads
  written before, or a model input, constant or variable;
* operators: the inputs each TFLM kernel needs present, options of the operator's own kind with
  strides, dilations and filter sizes of at least 1 and known padding and activation codes, the
  ranks, channels and output shapes of the common kernels (convolutions, pools, fully connected,
  element-wise, same-shape operators, RESHAPE's element count);
* quantization: every scale finite and positive, as many zero points as scales, per-channel
  arrays as long as the quantized dimension, which must exist; and the multipliers TFLM's
  ADD/SUB and int8 SOFTMAX kernels derive from their scales within what their ``TFLITE_CHECK``
  allow (TFLM aborts the process otherwise: the "degenerate quantization scale" of a collapsed
  or untrained layer).

A zero point outside its type's range (int8: -128..127) is refused when an activation (fused,
or a ReLU operator) clamps the tensor: TFLM derives the clamp's bounds from the zero point, they
cross, and every value is pinned to one number (measured: a small conv/mean/fc/softmax model
whose ReLU-fused conv output got zero point 130 gave the same output for every input, in TFLM
and LiteRT alike). Elsewhere it is a warning in :attr:`ModelCheckReport.warnings` (up to the
int16 range, beyond which 32-bit offset arithmetic overflows): TFLM and LiteRT's reference
kernels compute with it as written (measured: an input zero point of 200 or -300 gave identical
TFLM and LiteRT outputs), while CMSIS-NN documents offsets within the type's range, which the
firmware comparison checks. Also warned about: data in ``buffers[0]`` (the converter's empty
sentinel) and a scale outside 1e-20..1e20 (a layer that collapsed to ~0 or diverged).

The result depends on the bytes only, so it is cached by content: every command and every
runner may call it again for the price of a hash.
"""
from __future__ import annotations

import dataclasses
import functools
import math

from tflite_export.flatbuffer import ModelCheckError, _enum_names, _schema, read_model_shared
from tflite_export.operator_checks import (ITEM_BITS, Refusal, check_decode, check_multipliers, check_options,
                                          check_shapes, describe_tensor, refuse)

__all__ = ["ModelCheckError", "ModelCheckReport", "check_model"]

#: The tensor types TFLM's allocator can size (TfLiteTypeSizeOf in memory_helpers.cc); any other
#: type makes it fail half-way and crash.
TFLM_TYPES = frozenset({"FLOAT16", "BFLOAT16", "FLOAT32", "FLOAT64", "INT16", "INT32", "UINT32", "UINT8", "UINT16",
                        "INT8", "INT64", "UINT64", "BOOL", "RESOURCE", "COMPLEX64", "COMPLEX128", "INT4"})
#: Zero-point range of each integer type a quantized tensor can have (TFLM keeps int32 zero points).
ZERO_POINT_RANGE: dict[str, tuple[int, int]] = {
    "INT8": (-128, 127), "UINT8": (0, 255), "INT16": (-32768, 32767), "INT4": (-8, 7), "UINT4": (0, 15),
    "INT2": (-2, 1), "UINT16": (0, 65535),
}
INT32_RANGE = (-(1 << 31), (1 << 31) - 1)
#: Zero points outside their type's range but within these bounds are warned about (if no
#: activation clamps the tensor); beyond them, refused.
WARN_ZERO_POINT = (-32768, 32767)
RELUS = ("RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1")
#: Largest tensor TFLM's int/size arithmetic counts without overflow (bytes).
MAX_TENSOR_BYTES = (1 << 31) - 1
#: Scales outside this range are warned about (a collapsed or diverged layer), not refused.
SUSPECT_SCALE = (1e-20, 1e20)
SCHEMA_VERSION = 3  # TFLITE_SCHEMA_VERSION, which TFLM requires


@dataclasses.dataclass(frozen=True)
class ModelCheckReport:
    """What :func:`check_model` found in a model it accepts."""

    source: str  # the file (or description) the bytes came from
    subgraphs: int
    operators: int
    tensors: int
    inputs: tuple[int, ...]  # tensor indices of the model's inputs
    outputs: tuple[int, ...]  # tensor indices of the model's outputs
    operator_names: tuple[str, ...]  # in execution order
    warnings: tuple[str, ...]  # suspect but runnable findings, each naming the tensor (no source prefix)


@dataclasses.dataclass(frozen=True)
class _Findings:
    problem: str | None  # the first refusal (without the source), or None
    subgraphs: int = 0
    operators: int = 0
    tensors: int = 0
    inputs: tuple[int, ...] = ()
    outputs: tuple[int, ...] = ()
    operator_names: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def check_model(model_bytes: bytes, *, source: str) -> ModelCheckReport:
    """Check flatbuffer ``model_bytes`` (a ``.tflite``'s content) before any interpreter runs it.

    Returns a :class:`ModelCheckReport`; raises :class:`ModelCheckError` (an ``AscError``: exit 1)
    whose one-paragraph message starts with ``source``, names the tensor or operator (index and
    name) and what is wrong, and says how to fix it. Cached by content."""
    return _report(_findings(bytes(model_bytes)), source=source)


def check_parsed_model(model, *, source: str) -> ModelCheckReport:
    """:func:`check_model` of a flatbuffer the caller has already parsed (``model``: the ``ModelT`` of
    :func:`tflite_export.flatbuffer.read_model_shared`), so its bytes are not parsed again."""
    try:
        found = _check(model)
    except Refusal as e:
        found = _Findings(problem=str(e))
    return _report(found, source=source)


def _report(found: _Findings, *, source: str) -> ModelCheckReport:
    if found.problem is not None:
        raise ModelCheckError(f"{source}: refused by the model check: {found.problem}")
    return ModelCheckReport(source=str(source), subgraphs=found.subgraphs, operators=found.operators,
                            tensors=found.tensors, inputs=found.inputs, outputs=found.outputs,
                            operator_names=found.operator_names, warnings=found.warnings)


@functools.lru_cache(maxsize=16)
def _findings(data: bytes) -> _Findings:
    try:
        model = read_model_shared(data)
    except ModelCheckError as e:
        return _Findings(problem=str(e))
    try:
        return _check(model)
    except Refusal as e:
        return _Findings(problem=str(e))


def _check(model) -> _Findings:
    s = _schema()
    if model.version != SCHEMA_VERSION:
        refuse(f"schema version {model.version}; TFLM reads version {SCHEMA_VERSION} only")
    n_sub = len(model.subgraphs or [])
    if n_sub != 1:
        refuse(f"{n_sub} subgraphs; TFLM and the firmware run a model of exactly one subgraph (no control flow, "
               "one signature)", "Convert the model without control flow (IF/WHILE) and with one signature")
    graph = model.subgraphs[0]
    tensors = list(graph.tensors or [])
    buffers = list(model.buffers or [])
    codes = list(model.operatorCodes or [])
    operators = list(graph.operators or [])
    type_names = _enum_names(s.TensorType)
    op_names = _operator_code_names(s, codes)
    warnings: list[str] = []

    # buffers
    for b, buf in enumerate(buffers):
        if buf is not None and (int(buf.offset or 0) > 1 or int(buf.size or 0) > 0):
            refuse(f"buffer {b} is stored outside the flatbuffer's buffer vector (offset {buf.offset}, size "
                   f"{buf.size}: the form of models over 2 GB), which TFLM does not read",
                   "Convert the model without the large-model layout; a model for a microcontroller is far "
                   "below 2 GB")
    if buffers and buffers[0] is not None and buffers[0].data is not None and len(buffers[0].data):
        warnings.append("buffer 0 holds data; the TFLite converter keeps it empty (a sentinel)")

    # tensors
    decoded_inputs = _lut_encoded_tensors(operators, op_names)
    clamped = _clamped_tensors(operators, op_names)
    for i, t in enumerate(tensors):
        tname = type_names.get(t.type)
        if tname is None:
            refuse(f"{describe_tensor(i, t)} has type code {t.type}, which is not a TFLite tensor type")
        if tname not in TFLM_TYPES:
            refuse(f"{describe_tensor(i, t)} has type {tname}, which TFLM cannot allocate (memory_helpers.cc knows "
                   f"{', '.join(sorted(TFLM_TYPES))})", "Convert the model to int8 (or another type TFLM runs)")
        shape = [int(v) for v in (t.shape if t.shape is not None else [])]
        if any(v < 0 for v in shape):
            refuse(f"{describe_tensor(i, t)} has shape {shape}, with a negative dimension; TFLM plans fixed shapes",
                   "Convert the model with every dimension fixed (a concrete input shape, batch 1)")
        elements = math.prod(shape)
        bits = ITEM_BITS.get(tname)
        if bits is not None and elements * bits // 8 > MAX_TENSOR_BYTES:
            refuse(f"{describe_tensor(i, t)} has shape {shape}: {elements * bits // 8:,d} bytes, more than "
                   "TFLM's 32-bit sizes can count")
        if not 0 <= int(t.buffer) < max(len(buffers), 1):
            refuse(f"{describe_tensor(i, t)} refers to buffer {t.buffer}, but the model has {len(buffers)} buffers "
                   f"(0..{len(buffers) - 1})")
        if int(getattr(t, "externalBuffer", 0) or 0):
            refuse(f"{describe_tensor(i, t)} keeps its data in external buffer {t.externalBuffer}, which TFLM does not "
                   "read (it would run on an empty tensor)")
        buf = buffers[t.buffer] if buffers else None
        nbytes = len(buf.data) if buf is not None and buf.data is not None else 0
        if nbytes and bits is not None and t.sparsity is None and i not in decoded_inputs:
            expected = {-(-elements * bits // 8)} | ({elements} if bits < 8 else set())
            if nbytes not in expected:
                refuse(f"{describe_tensor(i, t)} ({tname}, shape {shape}) needs {min(expected):,d} bytes of data, "
                       f"but its buffer {t.buffer} holds {nbytes:,d}")
        _check_quantization(i, t, tname, shape, warnings, encoded=i in decoded_inputs, clamped=i in clamped)

    # inputs, outputs, operators
    if not operators:
        refuse("the model has no operators, so there is nothing to run (TFLM would find no tensor data)",
               "Convert a model with at least one layer")
    for role, ids in (("input", graph.inputs), ("output", graph.outputs)):
        ids = [int(v) for v in (ids if ids is not None else [])]
        if not ids:
            refuse(f"the model has no {role} tensor", "Convert a model with one input and one output")
        for v in ids:
            if not 0 <= v < len(tensors):
                refuse(f"the model's {role} refers to tensor {v}, but the model has {len(tensors)} tensors")
    constant = {i for i, t in enumerate(tensors)
                if buffers and buffers[t.buffer].data is not None and len(buffers[t.buffer].data)}
    for v in graph.inputs:
        if v in constant:
            refuse(f"the model's input {describe_tensor(v, tensors[v])} is a constant (it has data in the file); "
                   "an inference would write into the model's weights")
    written = set(int(v) for v in graph.inputs) | constant
    written |= {i for i, t in enumerate(tensors) if t.isVariable}
    for k, op in enumerate(operators):
        if not 0 <= int(op.opcodeIndex) < len(codes):
            refuse(f"operator {k} has opcode index {op.opcodeIndex}, but the model has {len(codes)} operator codes "
                   f"(0..{len(codes) - 1})")
        name = op_names[int(op.opcodeIndex)]
        label = f"operator {k} ({name})"
        if name.startswith("UNKNOWN_"):
            refuse(f"{label} uses operator code {op.opcodeIndex}, whose builtin code {name[8:]} is no TFLite operator")
        for role, ids, optional in (("input", op.inputs, True), ("output", op.outputs, False),
                                    ("intermediate", op.intermediates, True)):
            for v in (ids if ids is not None else []):
                v = int(v)
                if v == -1 and optional:
                    continue
                if not 0 <= v < len(tensors):
                    refuse(f"{label} has {role} tensor index {v}, but the model has {len(tensors)} tensors "
                           f"(0..{len(tensors) - 1}{', or -1 for an omitted optional input' if optional else ''})")
        if op.outputs is None or len(op.outputs) == 0:
            refuse(f"{label} has no output tensor")
        for v in [*(op.inputs if op.inputs is not None else []), *op.outputs]:
            shape = tensors[v].shape if v >= 0 and tensors[v].shape is not None else []
            if v >= 0 and int(v) not in constant and 0 in [int(d) for d in shape]:
                refuse(f"{label} uses {describe_tensor(v, tensors[v])} of shape {[int(d) for d in shape]}, which "
                       "has no elements; TFLM's kernels divide by its dimensions")
        code = codes[int(op.opcodeIndex)]
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode)) != s.BuiltinOperator.CUSTOM
        for v in op.inputs if op.inputs is not None and builtin else []:  # a custom op's scratch is its own
            if v >= 0 and int(v) not in written:
                refuse(f"{label} reads {describe_tensor(v, tensors[v])} before any operator writes it (it is neither a "
                       "model input, a constant nor a variable)")
        for v in op.outputs:
            if int(v) in constant:
                refuse(f"{label} writes its output into {describe_tensor(v, tensors[v])}, which is a constant (it has "
                       "data in the file)")
            if int(v) in set(int(x) for x in graph.inputs):
                refuse(f"{label} writes its output into the model's input {describe_tensor(v, tensors[v])}")
            written.add(int(v))
        check_options(label, op, name)
        if name == "TFLM_DECODE":
            check_decode(label, op, tensors, buffers)
        check_shapes(label, op, name, tensors)
        check_multipliers(label, op, name, tensors, type_names)
    for v in graph.outputs:
        if int(v) not in written:
            refuse(f"the model's output {describe_tensor(v, tensors[v])} is written by no operator")

    names = tuple(op_names[int(op.opcodeIndex)] for op in operators)
    return _Findings(problem=None, subgraphs=n_sub, operators=len(operators), tensors=len(tensors),
                     inputs=tuple(int(v) for v in graph.inputs), outputs=tuple(int(v) for v in graph.outputs),
                     operator_names=names, warnings=tuple(warnings))


def _operator_code_names(s, codes) -> list[str]:
    names = _enum_names(s.BuiltinOperator)
    out = []
    for oc in codes:
        code = max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))
        if code == s.BuiltinOperator.CUSTOM:
            custom = oc.customCode.decode(errors="replace") if isinstance(oc.customCode, bytes) else oc.customCode
            out.append(str(custom or "CUSTOM"))
        else:
            out.append(names.get(code, f"UNKNOWN_{code}"))
    return out


def _lut_encoded_tensors(operators, op_names) -> set[int]:
    """Tensors a ``TFLM_DECODE`` operator reads: LUT indices and value tables, whose byte counts are
    not their shapes' (:mod:`tflite_export.compression`)."""
    out: set[int] = set()
    for op in operators:
        k = int(op.opcodeIndex)
        if 0 <= k < len(op_names) and op_names[k] == "TFLM_DECODE":
            out |= {int(v) for v in (op.inputs if op.inputs is not None else []) if v >= 0}
    return out


def _clamped_tensors(operators, op_names) -> set[int]:
    """Outputs of operators with a fused activation or of a ReLU: TFLM clamps them to bounds it
    derives from their zero point (CalculateActivationRangeQuantized)."""
    out: set[int] = set()
    for op in operators:
        k = int(op.opcodeIndex)
        name = op_names[k] if 0 <= k < len(op_names) else ""
        fused = getattr(op.builtinOptions, "fusedActivationFunction", 0) if op.builtinOptions is not None else 0
        if fused or name in RELUS:
            out |= {int(v) for v in (op.outputs if op.outputs is not None else []) if v >= 0}
    return out


def _check_quantization(i: int, t, tname: str, shape: list[int], warnings: list[str], *, encoded: bool,
                        clamped: bool) -> None:
    q = t.quantization
    if q is None:
        return
    scales = [float(v) for v in (q.scale if q.scale is not None else [])]
    zps = [int(v) for v in (q.zeroPoint if q.zeroPoint is not None else [])]
    if not scales and not zps:
        return
    where = describe_tensor(i, t)
    for c, v in enumerate(scales):
        if not math.isfinite(v) or v <= 0:
            ch = f" (channel {c})" if len(scales) > 1 else ""
            refuse(f"{where} has quantization scale {v}{ch}; a scale must be finite and positive "
                   "(real = scale * (q - zero_point))")
    if len(zps) != len(scales):
        refuse(f"{where} has {len(scales)} quantization scale(s) but {len(zps)} zero point(s); each scale needs "
               "its zero point")
    lo, hi = ZERO_POINT_RANGE.get(tname, INT32_RANGE)
    for c, z in enumerate(zps):
        if lo <= z <= hi:
            continue
        ch = f" (channel {c})" if len(zps) > 1 else ""
        what = f"{where} ({tname}) has zero point {z}{ch}, outside {tname}'s range {lo}..{hi}"
        if clamped:
            refuse(f"{what}, and an activation (fused or ReLU) clamps it: TFLM derives the clamp's bounds from the "
                   "zero point, so they cross and every value of the tensor is pinned to one number",
                   "Quantize the model again (the TFLite converter keeps every zero point in range)")
        if not WARN_ZERO_POINT[0] <= z <= WARN_ZERO_POINT[1]:
            refuse(f"{what} and beyond {WARN_ZERO_POINT[0]}..{WARN_ZERO_POINT[1]}, where the kernels' 32-bit "
                   "offset arithmetic overflows", "Quantize the model again (the TFLite converter keeps every "
                   "zero point in range)")
        warnings.append(f"{what}: TFLM and LiteRT's reference kernels compute with it as written, but the values "
                        f"the tensor can hold are all on one side of zero; optimized kernels (CMSIS-NN) document "
                        f"offsets within the type's range, so compare the firmware with TFLM (asc firmware)")
    if len(scales) > 1 and not encoded:  # LUT indices keep the decoded tensor's quantization
        qd = int(q.quantizedDimension)
        if len(shape) == 1 and shape[0] == len(scales):
            pass  # a per-channel bias: old converters wrote the filter's dimension here, which TFLM ignores
        elif not 0 <= qd < len(shape):
            refuse(f"{where} has {len(scales)} per-channel scales along dimension {qd}, but its shape {shape} has "
                   f"{len(shape)} dimension(s)")
        elif shape[qd] != len(scales):
            refuse(f"{where} has {len(scales)} per-channel scales, but its dimension {qd} (shape {shape}) has "
                   f"{shape[qd]} channels")
    odd = [v for v in scales if not SUSPECT_SCALE[0] <= v <= SUSPECT_SCALE[1]]
    if odd:
        lo, hi = SUSPECT_SCALE
        warnings.append(f"{where} has quantization scale {odd[0]:g}, outside {lo:g}..{hi:g}: "
                        "a layer whose values collapsed to ~0 or diverged (an untrained or broken model?)")


