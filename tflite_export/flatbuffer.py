"""Reading a .tflite flatbuffer with the TFLite schema (the copy tflite-micro ships).

Small single-purpose functions: :func:`read_model` parses (:func:`read_model_shared` once per
content, for readers), :func:`describe_tensors` lists tensors with their byte sizes,
:func:`operator_names` the builtin ops, and the ``check_*`` functions raise
:class:`ModelCheckError` with a message that says what is wrong and why.
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np

from keras_asc.errors import AscError

#: TFLM's MicroMutableOpResolver registration method for each builtin op this project's
#: models may contain. An op missing here is one the export refuses (TFLM may still have it,
#: but nothing here has been validated with it).
TFLM_RESOLVER_METHODS: dict[str, str] = {
    "ADD": "AddAdd", "AVERAGE_POOL_2D": "AddAveragePool2D", "CONCATENATION": "AddConcatenation",
    "CONV_2D": "AddConv2D", "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D", "DEQUANTIZE": "AddDequantize",
    "FULLY_CONNECTED": "AddFullyConnected", "LOGISTIC": "AddLogistic", "MAX_POOL_2D": "AddMaxPool2D",
    "MEAN": "AddMean", "MUL": "AddMul", "PAD": "AddPad", "QUANTIZE": "AddQuantize",
    "REDUCE_MAX": "AddReduceMax", "RELU": "AddRelu", "RELU6": "AddRelu6", "RESHAPE": "AddReshape",
    "SOFTMAX": "AddSoftmax", "SQUEEZE": "AddSqueeze",
    "TFLM_DECODE": "AddDecode",  # custom: decodes LUT-compressed weights (tflite_export.compression)
}

#: Every operator the pinned TFLM's ``MicroMutableOpResolver`` (micro_mutable_op_resolver.h of the
#: ``tflite-micro`` archive) registers with a default kernel that the firmware builds select
#: (:func:`firmware_harness.builds.tflm_build.select_sources`): op name -> registration method. A superset
#: of :data:`TFLM_RESOLVER_METHODS` with the same methods; ``asc validate``/``asc firmware`` of any
#: int8 .tflite (:mod:`firmware_harness.model_file`) take a model whose operators are all here.
#: ``tests/firmware_harness/test_any_model.py`` checks it against the header.
TFLM_MUTABLE_RESOLVER_METHODS: dict[str, str] = {
    "ABS": "AddAbs", "ADD": "AddAdd", "ADD_N": "AddAddN", "ARG_MAX": "AddArgMax", "ARG_MIN": "AddArgMin",
    "ASSIGN_VARIABLE": "AddAssignVariable", "AVERAGE_POOL_2D": "AddAveragePool2D",
    "BATCH_MATMUL": "AddBatchMatMul", "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd", "BROADCAST_ARGS": "AddBroadcastArgs",
    "BROADCAST_TO": "AddBroadcastTo", "CALL_ONCE": "AddCallOnce", "CAST": "AddCast", "CEIL": "AddCeil",
    "CONCATENATION": "AddConcatenation", "CONV_2D": "AddConv2D", "COS": "AddCos", "CUMSUM": "AddCumSum",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D", "DEPTH_TO_SPACE": "AddDepthToSpace", "DEQUANTIZE": "AddDequantize",
    "DIV": "AddDiv", "ELU": "AddElu", "EMBEDDING_LOOKUP": "AddEmbeddingLookup", "EQUAL": "AddEqual", "EXP": "AddExp",
    "EXPAND_DIMS": "AddExpandDims", "FILL": "AddFill", "FLOOR": "AddFloor", "FLOOR_DIV": "AddFloorDiv",
    "FLOOR_MOD": "AddFloorMod", "FULLY_CONNECTED": "AddFullyConnected", "GATHER": "AddGather",
    "GATHER_ND": "AddGatherNd", "GREATER": "AddGreater", "GREATER_EQUAL": "AddGreaterEqual",
    "HARD_SWISH": "AddHardSwish", "IF": "AddIf", "L2_NORMALIZATION": "AddL2Normalization", "L2_POOL_2D": "AddL2Pool2D",
    "LEAKY_RELU": "AddLeakyRelu", "LESS": "AddLess", "LESS_EQUAL": "AddLessEqual", "LOG": "AddLog",
    "LOGICAL_AND": "AddLogicalAnd", "LOGICAL_NOT": "AddLogicalNot", "LOGICAL_OR": "AddLogicalOr",
    "LOGISTIC": "AddLogistic", "LOG_SOFTMAX": "AddLogSoftmax", "MAXIMUM": "AddMaximum", "MAX_POOL_2D": "AddMaxPool2D",
    "MEAN": "AddMean", "MINIMUM": "AddMinimum", "MIRROR_PAD": "AddMirrorPad", "MUL": "AddMul", "NEG": "AddNeg",
    "NOT_EQUAL": "AddNotEqual", "PACK": "AddPack", "PAD": "AddPad", "PADV2": "AddPadV2", "PRELU": "AddPrelu",
    "QUANTIZE": "AddQuantize", "READ_VARIABLE": "AddReadVariable", "REDUCE_ALL": "AddReduceAll",
    "REDUCE_MAX": "AddReduceMax", "REDUCE_MIN": "AddReduceMin", "RELU": "AddRelu", "RELU6": "AddRelu6",
    "RESHAPE": "AddReshape", "RESIZE_BILINEAR": "AddResizeBilinear", "REVERSE_V2": "AddReverseV2", "ROUND": "AddRound",
    "RSQRT": "AddRsqrt", "SELECT_V2": "AddSelectV2", "SHAPE": "AddShape", "SIN": "AddSin", "SLICE": "AddSlice",
    "SOFTMAX": "AddSoftmax", "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd", "SPACE_TO_DEPTH": "AddSpaceToDepth",
    "SPLIT": "AddSplit", "SPLIT_V": "AddSplitV", "SQRT": "AddSqrt", "SQUARE": "AddSquare",
    "SQUARED_DIFFERENCE": "AddSquaredDifference", "SQUEEZE": "AddSqueeze", "STRIDED_SLICE": "AddStridedSlice",
    "SUB": "AddSub", "SUM": "AddSum", "SVDF": "AddSvdf", "TANH": "AddTanh", "TFLM_DECODE": "AddDecode",
    "TRANSPOSE": "AddTranspose", "TRANSPOSE_CONV": "AddTransposeConv",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM", "UNPACK": "AddUnpack",
    "VAR_HANDLE": "AddVarHandle", "WHILE": "AddWhile", "ZEROS_LIKE": "AddZerosLike",
}

#: Operators the pinned TFLM has but registers without a default argument, which the firmware
#: builds' source selection does not read: refused with this note rather than "TFLM lacks it".
TFLM_OPS_NOT_BUILT: dict[str, str] = {
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor", "CIRCULAR_BUFFER": "AddCircularBuffer",
    "TFLite_Detection_PostProcess": "AddDetectionPostprocess",
}


class ModelCheckError(AscError, ValueError):
    """The flatbuffer is not something the firmware can run as intended."""


def _schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated  # heavy: the TFLM package

    return schema_py_generated


def _enum_names(enum_cls) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    index: int
    name: str
    dtype: str  # "INT8", "INT32", "FLOAT32", ...
    shape: tuple[int, ...]
    constant: bool  # has data in the flatbuffer (weights, biases)
    nbytes: int  # bytes of constant data in the flatbuffer (0 for activations)
    scales: tuple[float, ...]
    zero_points: tuple[int, ...]

    @property
    def activation_bytes(self) -> int:
        itemsize = {"INT8": 1, "UINT8": 1, "INT16": 2, "INT32": 4, "FLOAT32": 4, "INT64": 8}.get(self.dtype, 4)
        return int(np.prod(self.shape)) * itemsize if self.shape else itemsize


def read_model_shared(data: bytes):
    """:func:`read_model` once per content: every reader of the same bytes in this process (a
    stage's checks, its runners, layer localization) gets the same object back, so it must only
    be read; code that edits a model parses its own copy with :func:`read_model`."""
    return _parse_model_cached(bytes(data))


@functools.lru_cache(maxsize=4)
def _parse_model_cached(data: bytes):
    return read_model(data)


def read_model(data: bytes):
    """Parse ``data`` into the schema's object API (``ModelT``): a new object, which the caller
    may edit and repack."""
    s = _schema()
    if len(data) < 8 or data[4:8] != b"TFL3":
        what = "empty" if not data else "the TFL3 file identifier is missing"
        raise ModelCheckError(f"not a readable TFLite flatbuffer ({what}): it is truncated or not a .tflite. Give a "
                              "model written by the TFLite converter (or re-run `asc export`)")
    try:
        model = s.ModelT.InitFromObj(s.Model.GetRootAsModel(data, 0))
        if not model.subgraphs:
            raise ValueError("no subgraphs")
        return model
    except Exception as e:  # the flatbuffers library raises assorted errors on garbage
        raise ModelCheckError(f"not a readable TFLite flatbuffer ({type(e).__name__}: {e}): it is truncated or "
                              "damaged. Give a model written by the TFLite converter (or re-run `asc export`)") from e


def describe_tensors(model) -> list[TensorInfo]:
    s = _schema()
    types = _enum_names(s.TensorType)
    g = model.subgraphs[0]
    out = []
    for i, t in enumerate(g.tensors):
        buf = model.buffers[t.buffer] if t.buffer is not None and t.buffer < len(model.buffers) else None
        nbytes = len(buf.data) if buf is not None and buf.data is not None else 0
        q = t.quantization
        scales = tuple(float(v) for v in (q.scale if q is not None and q.scale is not None else ()))
        zps = tuple(int(v) for v in (q.zeroPoint if q is not None and q.zeroPoint is not None else ()))
        name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
        shape = tuple(int(v) for v in (t.shape if t.shape is not None else ()))
        out.append(TensorInfo(i, name, types.get(t.type, str(t.type)), shape, nbytes > 0, nbytes, scales, zps))
    return out


def operator_names(model) -> list[str]:
    """Operator name of every operator in execution order: the builtin's (``CONV_2D``), or a
    custom operator's own code (``TFLM_DECODE``)."""
    s = _schema()
    names = _enum_names(s.BuiltinOperator)
    codes = []
    for oc in model.operatorCodes:
        code = max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))
        if code == s.BuiltinOperator.CUSTOM:
            custom = oc.customCode.decode() if isinstance(oc.customCode, bytes) else oc.customCode
            codes.append(str(custom or "CUSTOM"))
        else:
            codes.append(names.get(code, f"UNKNOWN_{code}"))
    ops = model.subgraphs[0].operators or []
    for k, op in enumerate(ops):
        if not 0 <= op.opcodeIndex < len(codes):
            raise ModelCheckError(f"operator {k} has opcode index {op.opcodeIndex}, but the model has {len(codes)} "
                                  "operator codes; the file is damaged or was edited by hand (the model check, "
                                  "tflite_export.model_check.check_model, says more)")
    return [codes[op.opcodeIndex] for op in ops]


def io_tensors(model) -> tuple[list[TensorInfo], list[TensorInfo]]:
    tensors = describe_tensors(model)
    g = model.subgraphs[0]
    bad = [int(i) for i in [*g.inputs, *g.outputs] if not 0 <= i < len(tensors)]
    if bad:
        raise ModelCheckError(f"the model's inputs/outputs refer to tensor(s) {bad}, but it has {len(tensors)} "
                              "tensors; the file is damaged or was edited by hand")
    return [tensors[i] for i in g.inputs], [tensors[i] for i in g.outputs]


def check_int8_model(model) -> None:
    """Refuse anything but a full-integer, batch-1, single-subgraph model TFLM can run."""
    if len(model.subgraphs) != 1:
        raise ModelCheckError(f"{len(model.subgraphs)} subgraphs; the firmware path expects exactly one")
    ops = operator_names(model)
    tensors = describe_tensors(model)
    float_ops = sorted({name for name, op in zip(ops, model.subgraphs[0].operators)
                        if any(tensors[i].dtype == "FLOAT32" for i in [*op.inputs, *op.outputs] if i >= 0)})
    if float_ops:
        raise ModelCheckError(
            f"operator(s) {float_ops} would run in float32 (the converter kept them float because no "
            "int8 kernel exists, wrapping them in QUANTIZE/DEQUANTIZE); the model is not fully "
            "integer. Replace the layer that produces them")
    unknown = sorted({o for o in ops if o not in TFLM_RESOLVER_METHODS})
    if unknown:
        raise ModelCheckError(
            f"operator(s) {unknown} are not in the TFLM op set this toolkit registers "
            f"({', '.join(sorted(TFLM_RESOLVER_METHODS))}); replace the layer that produces them")
    inputs, outputs = io_tensors(model)
    for role, ts in (("input", inputs), ("output", outputs)):
        for t in ts:
            if t.dtype != "INT8":
                raise ModelCheckError(
                    f"{role} tensor '{t.name}' is {t.dtype}, not INT8: a float {role} means the firmware "
                    "would need float pre/post-processing in the graph; export with int8 input and output")
            if not t.shape or t.shape[0] != 1:
                raise ModelCheckError(f"{role} tensor '{t.name}' has shape {t.shape}; batch must be 1")
            if len(t.scales) != 1:
                raise ModelCheckError(f"{role} tensor '{t.name}' lacks a single (per-tensor) scale")


def tensor_size_table(model, top: int | None = None) -> str:
    """Constant (weight/bias) tensors largest first: bytes, dtype, shape, name."""
    rows = sorted((t for t in describe_tensors(model) if t.constant), key=lambda t: -t.nbytes)
    rows = rows[:top] if top else rows
    lines = [f"{'bytes':>9}  {'dtype':<7} {'shape':<20} name"]
    lines += [f"{t.nbytes:>9,d}  {t.dtype:<7} {str(t.shape):<20} {t.name}" for t in rows]
    return "\n".join(lines)


#: Operators whose multiply-accumulates :func:`operator_macs` counts (int8 MACs of the weights).
MAC_OPERATORS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def operator_macs(model) -> list[int]:
    """Multiply-accumulates of every operator in execution order, from the tensors' shapes:
    CONV_2D: output elements x kernel height x width x input channels per group (filter
    ``[out, kh, kw, in]``); DEPTHWISE_CONV_2D: output elements x kernel height x width (filter
    ``[1, kh, kw, out]``); FULLY_CONNECTED: output elements x input features (weights
    ``[out, in]``); every other operator 0 (the convention of DCASE and MLPerf Tiny)."""
    tensors = describe_tensors(model)
    out = []
    for name, op in zip(operator_names(model), model.subgraphs[0].operators):
        if name not in MAC_OPERATORS:
            out.append(0)
            continue
        outputs = int(np.prod(tensors[op.outputs[0]].shape))
        w = tensors[op.inputs[1]].shape
        per_output = {"CONV_2D": lambda: w[1] * w[2] * w[3], "DEPTHWISE_CONV_2D": lambda: w[1] * w[2],
                      "FULLY_CONNECTED": lambda: w[-1]}[name]()
        out.append(int(outputs * per_output))
    return out
