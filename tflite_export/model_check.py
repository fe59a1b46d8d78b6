"""The one model check every command runs before any interpreter sees a ``.tflite``.

:func:`check_model` parses the flatbuffer (:func:`tflite_export.flatbuffer.read_model_shared`)
and checks what TFLM's C++ trusts without checking, so that a damaged or hand-edited model is
refused with one paragraph naming the file, the tensor or operator (index and name) and what is
wrong, instead of crashing TFLM (signal 11 or an abort), LiteRT or XNNPACK, or running on
garbage:

* structure: the schema version, exactly one subgraph, at least one operator, one input and one
  output; every opcode index, operator input/output index (``-1`` is an optional input), subgraph
  input/output index and buffer index in range; every tensor type one TFLM knows; every shape
  non-negative and of a size TFLM's 32-bit counts hold; every constant tensor's data exactly as
  long as its shape and type say (LUT-compressed tensors, whose data the ``TFLM_DECODE``
  operator expands, excepted); no buffer stored outside the flatbuffer's vector (``offset``/
  ``size``, the >2 GB form) or external buffer, which TFLM does not read; no operator writing to a
  constant tensor or the model's input; every tensor an operator reads written before, or a
  model input, constant or variable;
* quantization: every scale finite and positive, as many zero points as scales, every zero point
  within its tensor type's range, per-channel arrays as long as the quantized dimension, which
  must exist; and the multipliers TFLM's ADD/SUB-family kernels derive from their scales within
  what those kernels' ``TFLITE_CHECK`` allow (TFLM aborts the process otherwise).

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

__all__ = ["ModelCheckError", "ModelCheckReport", "check_model"]

#: Bytes per element of the tensor types with a fixed size; INT4/UINT4/INT2 are packed.
ITEM_BITS: dict[str, int] = {
    "FLOAT32": 32, "FLOAT16": 16, "INT32": 32, "UINT8": 8, "INT64": 64, "BOOL": 8, "INT16": 16, "COMPLEX64": 64,
    "INT8": 8, "FLOAT64": 64, "COMPLEX128": 128, "UINT64": 64, "UINT32": 32, "UINT16": 16, "INT4": 4,
    "BFLOAT16": 16, "INT2": 2, "UINT4": 4, "FLOAT8_E4M3FN": 8, "FLOAT8_E5M2": 8,
}
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
#: Kernels whose Prepare derives multipliers with TFLM's QuantizeMultiplierSmallerThanOneExp
#: (add_common.cc, sub_common.cc: left shift 20 for int8, 15 for int16), which aborts the
#: process (TFLITE_CHECK) unless each multiplier is below 1.
ADD_LIKE = ("ADD", "SUB")
FIX = ("The file is damaged or was edited by hand: convert the model again with the TFLite converter "
       "(or re-run `asc export`)")


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
    found = _findings(bytes(model_bytes))
    if found.problem is not None:
        raise ModelCheckError(f"{source}: refused by the model check: {found.problem}")
    return ModelCheckReport(source=str(source), subgraphs=found.subgraphs, operators=found.operators,
                            tensors=found.tensors, inputs=found.inputs, outputs=found.outputs,
                            operator_names=found.operator_names, warnings=found.warnings)


class _Refusal(Exception):
    """One check's finding (internal: turned into :class:`ModelCheckError` with the source)."""


@functools.lru_cache(maxsize=16)
def _findings(data: bytes) -> _Findings:
    try:
        model = read_model_shared(data)
    except ModelCheckError as e:
        return _Findings(problem=str(e))
    try:
        return _check(model, len(data))
    except _Refusal as e:
        return _Findings(problem=str(e))


def _name(t) -> str:
    n = t.name.decode(errors="replace") if isinstance(t.name, bytes) else str(t.name or "")
    return n if len(n) <= 80 else n[:77] + "..."


def _tensor(i: int, t) -> str:
    return f"tensor {i} ('{_name(t)}')"


def _refuse(what: str, fix: str = FIX) -> None:
    raise _Refusal(f"{what}. {fix}")


def _op_label(k: int, names: list[str]) -> str:
    return f"operator {k} ({names[k]})" if k < len(names) else f"operator {k}"


def _check(model, file_bytes: int) -> _Findings:
    s = _schema()
    if model.version != SCHEMA_VERSION:
        _refuse(f"schema version {model.version}; TFLM reads version {SCHEMA_VERSION} only")
    n_sub = len(model.subgraphs or [])
    if n_sub != 1:
        _refuse(f"{n_sub} subgraphs; TFLM and the firmware run a model of exactly one subgraph (no control flow, "
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
            _refuse(f"buffer {b} is stored outside the flatbuffer's buffer vector (offset {buf.offset}, size "
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
            _refuse(f"{_tensor(i, t)} has type code {t.type}, which is not a TFLite tensor type")
        if tname not in TFLM_TYPES:
            _refuse(f"{_tensor(i, t)} has type {tname}, which TFLM cannot allocate (memory_helpers.cc knows "
                    f"{', '.join(sorted(TFLM_TYPES))})", "Convert the model to int8 (or another type TFLM runs)")
        shape = [int(v) for v in (t.shape if t.shape is not None else [])]
        if any(v < 0 for v in shape):
            _refuse(f"{_tensor(i, t)} has shape {shape}, with a negative dimension; TFLM plans fixed shapes",
                    "Convert the model with every dimension fixed (a concrete input shape, batch 1)")
        elements = math.prod(shape)
        bits = ITEM_BITS.get(tname)
        if bits is not None and elements * bits // 8 > MAX_TENSOR_BYTES:
            _refuse(f"{_tensor(i, t)} has shape {shape}: {elements * bits // 8:,d} bytes, more than TFLM's 32-bit "
                    "sizes can count")
        if not 0 <= int(t.buffer) < max(len(buffers), 1):
            _refuse(f"{_tensor(i, t)} refers to buffer {t.buffer}, but the model has {len(buffers)} buffers "
                    f"(0..{len(buffers) - 1})")
        if int(getattr(t, "externalBuffer", 0) or 0):
            _refuse(f"{_tensor(i, t)} keeps its data in external buffer {t.externalBuffer}, which TFLM does not "
                    "read (it would run on an empty tensor)")
        buf = buffers[t.buffer] if buffers else None
        nbytes = len(buf.data) if buf is not None and buf.data is not None else 0
        if nbytes and bits is not None and t.sparsity is None and i not in decoded_inputs:
            expected = {-(-elements * bits // 8)} | ({elements} if bits < 8 else set())
            if nbytes not in expected:
                _refuse(f"{_tensor(i, t)} ({tname}, shape {shape}) needs {min(expected):,d} bytes of data, but its "
                        f"buffer {t.buffer} holds {nbytes:,d}")
        _check_quantization(i, t, tname, shape, warnings, encoded=i in decoded_inputs, clamped=i in clamped)

    # inputs, outputs, operators
    if not operators:
        _refuse("the model has no operators, so there is nothing to run (TFLM would find no tensor data)",
                "Convert a model with at least one layer")
    for role, ids in (("input", graph.inputs), ("output", graph.outputs)):
        ids = [int(v) for v in (ids if ids is not None else [])]
        if not ids:
            _refuse(f"the model has no {role} tensor", "Convert a model with one input and one output")
        for v in ids:
            if not 0 <= v < len(tensors):
                _refuse(f"the model's {role} refers to tensor {v}, but the model has {len(tensors)} tensors")
    constant = {i for i, t in enumerate(tensors)
                if buffers and buffers[t.buffer].data is not None and len(buffers[t.buffer].data)}
    for v in graph.inputs:
        if v in constant:
            _refuse(f"the model's input {_tensor(v, tensors[v])} is a constant (it has data in the file); "
                    "an inference would write into the model's weights")
    written = set(int(v) for v in graph.inputs) | constant
    written |= {i for i, t in enumerate(tensors) if t.isVariable}
    for k, op in enumerate(operators):
        if not 0 <= int(op.opcodeIndex) < len(codes):
            _refuse(f"operator {k} has opcode index {op.opcodeIndex}, but the model has {len(codes)} operator codes "
                    f"(0..{len(codes) - 1})")
        label = _op_label(k, [op_names[int(o.opcodeIndex)] if 0 <= int(o.opcodeIndex) < len(codes) else "?"
                               for o in operators])
        for role, ids, optional in (("input", op.inputs, True), ("output", op.outputs, False),
                                    ("intermediate", op.intermediates, True)):
            for v in (ids if ids is not None else []):
                v = int(v)
                if v == -1 and optional:
                    continue
                if not 0 <= v < len(tensors):
                    _refuse(f"{label} has {role} tensor index {v}, but the model has {len(tensors)} tensors "
                            f"(0..{len(tensors) - 1}{', or -1 for an omitted optional input' if optional else ''})")
        if op.outputs is None or len(op.outputs) == 0:
            _refuse(f"{label} has no output tensor")
        for v in [*(op.inputs if op.inputs is not None else []), *op.outputs]:
            shape = tensors[v].shape if v >= 0 and tensors[v].shape is not None else []
            if v >= 0 and int(v) not in constant and 0 in [int(d) for d in shape]:
                _refuse(f"{label} uses {_tensor(v, tensors[v])} of shape {[int(d) for d in shape]}, which has no "
                        "elements; TFLM's kernels divide by its dimensions")
        builtin = int(codes[int(op.opcodeIndex)].builtinCode) != s.BuiltinOperator.CUSTOM
        for v in op.inputs if op.inputs is not None and builtin else []:  # a custom op's scratch is its own
            if v >= 0 and int(v) not in written:
                _refuse(f"{label} reads {_tensor(v, tensors[v])} before any operator writes it (it is neither a "
                        "model input, a constant nor a variable)")
        for v in op.outputs:
            if int(v) in constant:
                _refuse(f"{label} writes its output into {_tensor(v, tensors[v])}, which is a constant (it has "
                        "data in the file)")
            if int(v) in set(int(x) for x in graph.inputs):
                _refuse(f"{label} writes its output into the model's input {_tensor(v, tensors[v])}")
            written.add(int(v))
        _check_options(label, op, op_names[int(op.opcodeIndex)])
        if op_names[int(op.opcodeIndex)] == "TFLM_DECODE":
            _check_decode(label, op, tensors, buffers)
        _check_shapes(label, op, op_names[int(op.opcodeIndex)], tensors, buffers)
        _check_multipliers(k, label, op, op_names[int(op.opcodeIndex)], tensors, type_names)
    for v in graph.outputs:
        if int(v) not in written:
            _refuse(f"the model's output {_tensor(v, tensors[v])} is written by no operator")

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
    where = _tensor(i, t)
    for c, v in enumerate(scales):
        if not math.isfinite(v) or v <= 0:
            ch = f" (channel {c})" if len(scales) > 1 else ""
            _refuse(f"{where} has quantization scale {v}{ch}; a scale must be finite and positive "
                    "(real = scale * (q - zero_point))")
    if len(zps) != len(scales):
        _refuse(f"{where} has {len(scales)} quantization scale(s) but {len(zps)} zero point(s); each scale needs "
                "its zero point")
    lo, hi = ZERO_POINT_RANGE.get(tname, INT32_RANGE)
    for c, z in enumerate(zps):
        if lo <= z <= hi:
            continue
        ch = f" (channel {c})" if len(zps) > 1 else ""
        what = f"{where} ({tname}) has zero point {z}{ch}, outside {tname}'s range {lo}..{hi}"
        if clamped:
            _refuse(f"{what}, and an activation (fused or ReLU) clamps it: TFLM derives the clamp's bounds from the "
                    "zero point, so they cross and every value of the tensor is pinned to one number",
                    "Quantize the model again (the TFLite converter keeps every zero point in range)")
        if not WARN_ZERO_POINT[0] <= z <= WARN_ZERO_POINT[1]:
            _refuse(f"{what} and beyond {WARN_ZERO_POINT[0]}..{WARN_ZERO_POINT[1]}, where the kernels' 32-bit "
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
            _refuse(f"{where} has {len(scales)} per-channel scales along dimension {qd}, but its shape {shape} has "
                    f"{len(shape)} dimension(s)")
        elif shape[qd] != len(scales):
            _refuse(f"{where} has {len(scales)} per-channel scales, but its dimension {qd} (shape {shape}) has "
                    f"{shape[qd]} channels")
    odd = [v for v in scales if not SUSPECT_SCALE[0] <= v <= SUSPECT_SCALE[1]]
    if odd:
        warnings.append(f"{where} has quantization scale {odd[0]:g}, outside {SUSPECT_SCALE[0]:g}..{SUSPECT_SCALE[1]:g}: "
                        "a layer whose values collapsed to ~0 or diverged (an untrained or broken model?)")


def _scale(t) -> float | None:
    q = t.quantization
    return float(q.scale[0]) if q is not None and q.scale is not None and len(q.scale) == 1 else None


def _check_multipliers(k: int, label: str, op, name: str, tensors, type_names) -> None:
    """TFLM's SOFTMAX Prepare for int8 (see below) and ADD/SUB Prepare for int8/int16: the output multiplier
    ``2 * max(s1, s2) / (2**shift * s_out)`` must be below 1 (``shift`` 20 for int8, 15 for int16),
    or ``QuantizeMultiplierSmallerThanOneExp`` aborts the process."""
    if name == "SOFTMAX" and op.builtinOptions is not None and op.inputs is not None and len(op.inputs):
        x = tensors[int(op.inputs[0])]
        s_in, beta = _scale(x), float(op.builtinOptions.beta)
        # softmax_common.cc: int8 input -> PreprocessSoftmaxScaling(beta, scale, 5 integer bits), whose
        # QuantizeMultiplierGreaterThanOne aborts unless beta * scale * 2**26 > 1
        if type_names.get(x.type) in ("INT8", "UINT8") and s_in is not None and not beta * s_in * (1 << 26) > 1:
            _refuse(f"{label}: beta {beta:g} times its input scale {s_in:g} is too small (TFLM needs beta * scale * "
                    "2**26 > 1, and aborts otherwise)", "Check the model's softmax (beta must be positive) and "
                    "quantize it again")
        return
    if name not in ADD_LIKE or op.inputs is None or len(op.inputs) < 2 or min(op.inputs[:2]) < 0:
        return
    out = tensors[int(op.outputs[0])]
    out_type = type_names.get(out.type)
    if out_type not in ("INT8", "INT16"):
        return
    s1, s2, so = _scale(tensors[int(op.inputs[0])]), _scale(tensors[int(op.inputs[1])]), _scale(out)
    if None in (s1, s2, so):
        _refuse(f"{label} is a quantized {name} whose inputs and output must each have one (per-tensor) scale")
    shift = 20 if out_type == "INT8" else 15
    # in float32 as TFLM computes it: 2 * max(s1, s2) / (2**shift * s_out)
    multiplier = 2.0 * max(s1, s2) / ((1 << shift) * so)
    if not multiplier < 1.0:
        _refuse(f"{label}: its output scale {so:g} is too small for its input scales {s1:g} and {s2:g} (TFLM needs "
                f"output scale > 2 * max(input scales) / 2**{shift}; it aborts otherwise): the output's values "
                "collapsed to ~0, as in an untrained or diverged model",
                "Check the training run and quantize the model again")


#: Operator input/output ranks TFLM's kernels index without checking (None: any rank).
RANKS: dict[str, tuple[tuple[int | None, ...], tuple[int | None, ...]]] = {
    "CONV_2D": ((4, 4, 1), (4,)), "DEPTHWISE_CONV_2D": ((4, 4, 1), (4,)), "FULLY_CONNECTED": ((None, 2, 1), (None,)),
    "AVERAGE_POOL_2D": ((4,), (4,)), "MAX_POOL_2D": ((4,), (4,)),
}
#: Operators whose output has exactly their first input's shape.
SAME_SHAPE = ("SOFTMAX", "RELU", "RELU6", "LOGISTIC", "TANH", "QUANTIZE", "DEQUANTIZE", "LEAKY_RELU", "HARD_SWISH",
              "ABS", "NEG", "LOG_SOFTMAX", "ELU", "PRELU")
ELEMENTWISE = ("ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE")
ACTIVATIONS = range(0, 6)  # ActivationFunctionType: NONE, RELU, RELU_N1_TO_1, RELU6, TANH, SIGN_BIT


#: The options each operator's TFLM parser reads (None: may be absent, TFLM's defaults are safe).
OPTIONS: dict[str, tuple[str, bool]] = {
    "CONV_2D": ("Conv2DOptionsT", True), "DEPTHWISE_CONV_2D": ("DepthwiseConv2DOptionsT", True),
    "AVERAGE_POOL_2D": ("Pool2DOptionsT", True), "MAX_POOL_2D": ("Pool2DOptionsT", True),
    "SOFTMAX": ("SoftmaxOptionsT", True), "FULLY_CONNECTED": ("FullyConnectedOptionsT", False),
    "ADD": ("AddOptionsT", False), "SUB": ("SubOptionsT", False), "MUL": ("MulOptionsT", False),
    "RESHAPE": ("ReshapeOptionsT", False), "MEAN": ("ReducerOptionsT", False),
}
#: Inputs an operator cannot do without (TFLM's kernels dereference them, several without
#: checking): op -> how many leading inputs must be present (not -1).
REQUIRED_INPUTS: dict[str, int] = {name: n for n, names in (
    (1, "ABS CEIL COS EXP FLOOR LOG LOGICAL_NOT NEG ROUND RSQRT SIN SQRT SQUARE TANH LOGISTIC ELU HARD_SWISH "
        "LEAKY_RELU LOG_SOFTMAX RELU RELU6 SOFTMAX QUANTIZE DEQUANTIZE CAST L2_NORMALIZATION L2_POOL_2D "
        "AVERAGE_POOL_2D MAX_POOL_2D DEPTH_TO_SPACE SPACE_TO_DEPTH SQUEEZE RESHAPE ADD_N CONCATENATION PACK UNPACK "
        "SHAPE ZEROS_LIKE READ_VARIABLE"),
    (2, "ADD SUB MUL DIV FLOOR_DIV FLOOR_MOD MAXIMUM MINIMUM SQUARED_DIFFERENCE EQUAL NOT_EQUAL GREATER "
        "GREATER_EQUAL LESS LESS_EQUAL LOGICAL_AND LOGICAL_OR PRELU BATCH_MATMUL GATHER GATHER_ND EMBEDDING_LOOKUP "
        "MEAN SUM REDUCE_MAX REDUCE_MIN REDUCE_ALL ARG_MAX ARG_MIN PAD PADV2 MIRROR_PAD EXPAND_DIMS TRANSPOSE "
        "BROADCAST_TO BROADCAST_ARGS FILL CUMSUM SPLIT RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR REVERSE_V2 CONV_2D "
        "DEPTHWISE_CONV_2D FULLY_CONNECTED ASSIGN_VARIABLE"),
    (3, "SPACE_TO_BATCH_ND BATCH_TO_SPACE_ND SLICE SPLIT_V SELECT_V2 TRANSPOSE_CONV"),
    (4, "STRIDED_SLICE"),
) for name in names.split()}


def _check_options(label: str, op, name: str) -> None:
    """The options of the operator's own kind (TFLM reads another kind's as absent, and then
    divides by a zero stride), strides, dilations and filter sizes of at least 1, a known
    padding and fused activation: TFLM divides and indexes by them without checking; and the
    inputs it cannot do without present."""
    inputs = [int(v) for v in (op.inputs if op.inputs is not None else [])]
    need = REQUIRED_INPUTS.get(name, 0)
    if len(inputs) < need or any(v < 0 for v in inputs[:need]):
        _refuse(f"{label} has inputs {inputs}; {name} needs its first {need} input(s) present (not -1)")
    if name == "DEPTHWISE_CONV_2D" and len(inputs) == 3 and inputs[2] < 0:
        _refuse(f"{label} lists an omitted bias (-1) as its third input: TFLM's depthwise kernel then releases a "
                "tensor it never allocated and crashes", "Drop the third input (a depthwise convolution without "
                "bias has two inputs), or convert the model again")
    o = op.builtinOptions
    kind, required = OPTIONS.get(name, (None, False))
    if kind is not None and o is not None and type(o).__name__ != kind:
        _refuse(f"{label} carries {type(o).__name__[:-1]}, not the {kind[:-1]} a {name} needs")
    if o is None:
        if required:
            _refuse(f"{label} has no {kind[:-1]}; TFLM would run it with zero strides (or beta 0) and crash")
        return
    for attr, v in vars(o).items():
        if attr.startswith(("stride", "dilation", "filter")) and isinstance(v, int) and v < 1:
            _refuse(f"{label} has {attr} {v}; it must be at least 1")
        if attr == "padding" and v not in (0, 1):
            _refuse(f"{label} has padding code {v}; TFLite knows SAME (0) and VALID (1)")
        if attr == "fusedActivationFunction" and v not in ACTIVATIONS:
            _refuse(f"{label} has fused activation code {v}; TFLite knows 0..5")


def _shape(tensors, v) -> list[int] | None:
    return None if v < 0 else [int(d) for d in (tensors[v].shape if tensors[v].shape is not None else [])]


def _out_size(size: int, k: int, stride: int, dilation: int, padding: int) -> int:
    """TFLM's ComputeOutSize: SAME (0) ceil(size / stride), VALID (1) over the dilated filter."""
    effective = (k - 1) * dilation + 1
    return (size + stride - 1) // stride if padding == 0 else (size + stride - effective) // stride


def _check_shapes(label: str, op, name: str, tensors, buffers) -> None:
    """The operator's tensors have the ranks and shapes its TFLM kernel assumes: ranks (CONV_2D,
    DEPTHWISE_CONV_2D, FULLY_CONNECTED, pools), channels, the output shape each computes (conv
    family, pools, fully connected, element-wise and same-shape operators, RESHAPE's element count).
    A mismatch makes TFLM read or write outside a tensor (a crash or silently wrong outputs)."""
    ins = [int(v) for v in (op.inputs if op.inputs is not None else [])]
    outs = [int(v) for v in op.outputs]
    shapes_in = [_shape(tensors, v) for v in ins]
    out = _shape(tensors, outs[0])
    want_in, want_out = RANKS.get(name, ((), ()))
    for role, shapes, want in (("input", shapes_in, want_in), ("output", [out], want_out)):
        for j, rank in enumerate(want):
            if j >= len(shapes):
                if role == "input" and j < 2:
                    _refuse(f"{label} has {len(shapes)} input(s); it needs at least {j + 1}")
                continue
            if shapes[j] is not None and rank is not None and len(shapes[j]) != rank:
                _refuse(f"{label}'s {role} {j} is {_tensor(ins[j] if role == 'input' else outs[0], tensors[ins[j] if role == 'input' else outs[0]])} of shape {shapes[j]}; {name} needs rank {rank} there")
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        _check_conv(label, name, op.builtinOptions, shapes_in, out)
    elif name in ("AVERAGE_POOL_2D", "MAX_POOL_2D") and op.builtinOptions is not None:
        o, x = op.builtinOptions, shapes_in[0]
        want = [x[0], _out_size(x[1], o.filterHeight, o.strideH, 1, o.padding),
                _out_size(x[2], o.filterWidth, o.strideW, 1, o.padding), x[3]]
        if out != want:
            _refuse(f"{label}'s output has shape {out}, but the pool computes {want} from its input {x}")
    elif name == "FULLY_CONNECTED":
        x, w = shapes_in[0], shapes_in[1]
        if w[1] <= 0 or math.prod(x) % w[1]:
            _refuse(f"{label}'s weights {w} take {w[1]} features, which do not divide its input's {math.prod(x)} elements")
        if not out or out[-1] != w[0] or math.prod(out) != math.prod(x) // w[1] * w[0]:
            _refuse(f"{label}'s output has shape {out}, but {math.prod(x) // w[1]} rows of its weights {w} give "
                    f"{w[0]} values each")
        _check_bias(label, shapes_in, w[0])
    elif name in SAME_SHAPE and shapes_in and shapes_in[0] is not None and out != shapes_in[0]:
        _refuse(f"{label}'s output has shape {out}, but {name} keeps its input's shape {shapes_in[0]}")
    elif name in ELEMENTWISE and len(shapes_in) >= 2 and None not in shapes_in[:2]:
        want = _broadcast(shapes_in[0], shapes_in[1])
        if want is None or out != want:
            _refuse(f"{label}'s inputs have shapes {shapes_in[0]} and {shapes_in[1]} (broadcast: {want}), but its "
                    f"output has shape {out}")
    elif name == "RESHAPE" and shapes_in and shapes_in[0] is not None and math.prod(out) != math.prod(shapes_in[0]):
        _refuse(f"{label} reshapes {shapes_in[0]} ({math.prod(shapes_in[0])} elements) to {out} "
                f"({math.prod(out)} elements)")


def _broadcast(a: list[int], b: list[int]) -> list[int] | None:
    n = max(len(a), len(b))
    a, b = [1] * (n - len(a)) + a, [1] * (n - len(b)) + b
    if any(x != y and 1 not in (x, y) for x, y in zip(a, b)):
        return None
    return [x if y == 1 else y for x, y in zip(a, b)]


def _check_bias(label: str, shapes_in, channels: int) -> None:
    if len(shapes_in) > 2 and shapes_in[2] is not None and math.prod(shapes_in[2]) != channels:
        _refuse(f"{label}'s bias has shape {shapes_in[2]}; it needs one value per output channel ({channels})")


def _check_conv(label: str, name: str, o, shapes_in, out) -> None:
    x, w = shapes_in[0], shapes_in[1]
    if name == "CONV_2D":
        channels = w[0]
        if w[3] <= 0 or x[3] % w[3]:
            _refuse(f"{label}'s filter {w} takes {w[3]} input channels, which do not divide its input's {x[3]}")
    else:
        channels = w[3]
        if w[0] != 1 or x[3] <= 0 or channels % x[3]:
            _refuse(f"{label}'s filter {w} does not fit its input {x} (depthwise filters are [1, h, w, channels], "
                    "a multiple of the input's channels)")
    _check_bias(label, shapes_in, channels)
    if o is None:
        return
    want = [x[0], _out_size(x[1], w[1], o.strideH, o.dilationHFactor, o.padding),
            _out_size(x[2], w[2], o.strideW, o.dilationWFactor, o.padding), channels]
    if out != want:
        _refuse(f"{label}'s output has shape {out}, but its input {x} and filter {w} give {want}")


DCM_BYTES = 16  # the DECODE common metadata ahead of a LUT's value tables (decode_state.h)


def _check_decode(label: str, op, tensors, buffers) -> None:
    """A ``TFLM_DECODE`` operator's (encoded, ancillary) input pairs hold what its LUT decoder
    (decode_state_lut.cc) reads without checking: the 16-byte metadata, enough index bits for
    every element of the output, and a value table per channel."""
    ins = [int(v) for v in (op.inputs if op.inputs is not None else [])]
    outs = [int(v) for v in op.outputs]
    if len(ins) != 2 * len(outs) or min(ins, default=-1) < 0:
        _refuse(f"{label} has inputs {ins} for {len(outs)} output(s); DECODE takes an (encoded, ancillary) pair of "
                "constant tensors per output")

    for j, out in enumerate(outs):
        encoded, ancillary = (bytes(buffers[tensors[v].buffer].data if buffers[tensors[v].buffer].data is not None
                                    else b"") for v in ins[2 * j:2 * j + 2])
        if len(ancillary) < DCM_BYTES:
            _refuse(f"{label}'s ancillary {_tensor(ins[2 * j + 1], tensors[ins[2 * j + 1]])} holds {len(ancillary)} "
                    f"bytes, less than the {DCM_BYTES}-byte DECODE metadata")
        if ancillary[0] != 0:  # not a LUT: TFLM's other decoders check for themselves
            continue
        bits, stride = ancillary[5] & 0x07, ancillary[6]
        count = math.prod(int(d) for d in (tensors[out].shape if tensors[out].shape is not None else []))
        q = tensors[out].quantization
        channels = max(1, len(q.scale) if q is not None and q.scale is not None else 1)
        if bits == 0 or len(encoded) * 8 < count * bits:
            _refuse(f"{label}'s encoded {_tensor(ins[2 * j], tensors[ins[2 * j]])} holds {len(encoded)} bytes, but "
                    f"{count} {bits}-bit indices for its output {_tensor(out, tensors[out])} need "
                    f"{-(-count * bits // 8)}")
        item = max(1, ITEM_BITS.get(_enum_names(_schema().TensorType).get(tensors[out].type, ""), 8) // 8)
        if stride < 1 or len(ancillary) - DCM_BYTES < channels * stride * item:
            _refuse(f"{label}'s ancillary {_tensor(ins[2 * j + 1], tensors[ins[2 * j + 1]])} holds "
                    f"{len(ancillary) - DCM_BYTES} bytes of value tables, but {channels} channel(s) of {stride} "
                    "values need more")
