"""Operator-level checks of :mod:`tflite_export.model_check`: what TFLM's kernels read from an
operator without checking (its inputs, options, shapes, the multipliers derived from its scales,
a ``TFLM_DECODE``'s metadata), and the refusal helpers both modules share.

Each ``check_*`` function raises :class:`Refusal` with what is wrong and the fix; the model check
turns it into one ``ModelCheckError`` paragraph naming the file.
"""
from __future__ import annotations

import math

from tflite_export.flatbuffer import _enum_names, _schema

#: Bits per element of the tensor types with a fixed size; INT4/UINT4/INT2 are packed.
ITEM_BITS: dict[str, int] = {
    "FLOAT32": 32, "FLOAT16": 16, "INT32": 32, "UINT8": 8, "INT64": 64, "BOOL": 8, "INT16": 16, "COMPLEX64": 64,
    "INT8": 8, "FLOAT64": 64, "COMPLEX128": 128, "UINT64": 64, "UINT32": 32, "UINT16": 16, "INT4": 4,
    "BFLOAT16": 16, "INT2": 2, "UINT4": 4, "FLOAT8_E4M3FN": 8, "FLOAT8_E5M2": 8,
}

#: Kernels whose Prepare derives multipliers with TFLM's QuantizeMultiplierSmallerThanOneExp
#: (add_common.cc, sub_common.cc: left shift 20 for int8, 15 for int16), which aborts the
#: process (TFLITE_CHECK) unless each multiplier is below 1.
ADD_LIKE = ("ADD", "SUB")

FIX = ("The file is damaged or was edited by hand: convert the model again with the TFLite converter "
       "(or re-run `asc export`)")


class Refusal(Exception):
    """One check's finding (internal: turned into :class:`ModelCheckError` with the source)."""


def tensor_name(t) -> str:
    n = t.name.decode(errors="replace") if isinstance(t.name, bytes) else str(t.name or "")
    return n if len(n) <= 80 else n[:77] + "..."


def describe_tensor(i: int, t) -> str:
    return f"tensor {i} ('{tensor_name(t)}')"


def refuse(what: str, fix: str = FIX) -> None:
    raise Refusal(f"{what}. {fix}")


def _scale(t) -> float | None:
    q = t.quantization
    return float(q.scale[0]) if q is not None and q.scale is not None and len(q.scale) == 1 else None


def check_multipliers(label: str, op, name: str, tensors, type_names) -> None:
    """The multipliers TFLM's kernels derive from the scales, where a ``TFLITE_CHECK`` aborts the
    process otherwise: int8 SOFTMAX (below); ADD/SUB for int8/int16, whose output multiplier
    ``2 * max(s1, s2) / (2**shift * s_out)`` must be below 1 (``shift`` 20 for int8, 15 for
    int16) for ``QuantizeMultiplierSmallerThanOneExp``."""
    if name == "SOFTMAX" and op.builtinOptions is not None and op.inputs is not None and len(op.inputs):
        x = tensors[int(op.inputs[0])]
        s_in, beta = _scale(x), float(op.builtinOptions.beta)
        # softmax_common.cc: int8 input -> PreprocessSoftmaxScaling(beta, scale, 5 integer bits), whose
        # QuantizeMultiplierGreaterThanOne aborts unless beta * scale * 2**26 > 1
        if type_names.get(x.type) in ("INT8", "UINT8") and s_in is not None and not beta * s_in * (1 << 26) > 1:
            refuse(f"{label}: beta {beta:g} times its input scale {s_in:g} is too small (TFLM needs beta * scale * "
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
        refuse(f"{label} is a quantized {name} whose inputs and output must each have one (per-tensor) scale")
    shift = 20 if out_type == "INT8" else 15
    # in float32 as TFLM computes it: 2 * max(s1, s2) / (2**shift * s_out)
    multiplier = 2.0 * max(s1, s2) / ((1 << shift) * so)
    if not multiplier < 1.0:
        refuse(f"{label}: its output scale {so:g} is too small for its input scales {s1:g} and {s2:g} (TFLM needs "
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


def check_options(label: str, op, name: str) -> None:
    """The options of the operator's own kind (TFLM reads another kind's as absent, and then
    divides by a zero stride), strides, dilations and filter sizes of at least 1, a known
    padding and fused activation: TFLM divides and indexes by them without checking; and the
    inputs it cannot do without present."""
    inputs = [int(v) for v in (op.inputs if op.inputs is not None else [])]
    need = REQUIRED_INPUTS.get(name, 0)
    if len(inputs) < need or any(v < 0 for v in inputs[:need]):
        refuse(f"{label} has inputs {inputs}; {name} needs its first {need} input(s) present (not -1)")
    if name == "DEPTHWISE_CONV_2D" and len(inputs) == 3 and inputs[2] < 0:
        refuse(f"{label} lists an omitted bias (-1) as its third input: TFLM's depthwise kernel then releases a "
               "tensor it never allocated and crashes", "Drop the third input (a depthwise convolution without "
               "bias has two inputs), or convert the model again")
    o = op.builtinOptions
    kind, required = OPTIONS.get(name, (None, False))
    if kind is not None and o is not None and type(o).__name__ != kind:
        refuse(f"{label} carries {type(o).__name__[:-1]}, not the {kind[:-1]} a {name} needs")
    if o is None:
        if required:
            refuse(f"{label} has no {kind[:-1]}; TFLM would run it with zero strides (or beta 0) and crash")
        return
    for attr, v in vars(o).items():
        if attr.startswith(("stride", "dilation", "filter")) and isinstance(v, int) and v < 1:
            refuse(f"{label} has {attr} {v}; it must be at least 1")
        if attr == "padding" and v not in (0, 1):
            refuse(f"{label} has padding code {v}; TFLite knows SAME (0) and VALID (1)")
        if attr == "fusedActivationFunction" and v not in ACTIVATIONS:
            refuse(f"{label} has fused activation code {v}; TFLite knows 0..5")


def _shape(tensors, v) -> list[int] | None:
    return None if v < 0 else [int(d) for d in (tensors[v].shape if tensors[v].shape is not None else [])]


def _out_size(size: int, k: int, stride: int, dilation: int, padding: int) -> int:
    """TFLM's ComputeOutSize: SAME (0) ceil(size / stride), VALID (1) over the dilated filter."""
    effective = (k - 1) * dilation + 1
    return (size + stride - 1) // stride if padding == 0 else (size + stride - effective) // stride


def check_shapes(label: str, op, name: str, tensors) -> None:
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
                    refuse(f"{label} has {len(shapes)} input(s); it needs at least {j + 1}")
                continue
            if shapes[j] is not None and rank is not None and len(shapes[j]) != rank:
                v = ins[j] if role == "input" else outs[0]
                refuse(f"{label}'s {role} {j} is {describe_tensor(v, tensors[v])} of shape {shapes[j]}; {name} needs "
                       f"rank {rank} there")
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        _check_conv(label, name, op.builtinOptions, shapes_in, out)
    elif name in ("AVERAGE_POOL_2D", "MAX_POOL_2D") and op.builtinOptions is not None:
        o, x = op.builtinOptions, shapes_in[0]
        want = [x[0], _out_size(x[1], o.filterHeight, o.strideH, 1, o.padding),
                _out_size(x[2], o.filterWidth, o.strideW, 1, o.padding), x[3]]
        if out != want:
            refuse(f"{label}'s output has shape {out}, but the pool computes {want} from its input {x}")
    elif name == "FULLY_CONNECTED":
        x, w = shapes_in[0], shapes_in[1]
        if w[1] <= 0 or math.prod(x) % w[1]:
            refuse(f"{label}'s weights {w} take {w[1]} features, which do not divide its input's {math.prod(x)} "
                   "elements")
        if not out or out[-1] != w[0] or math.prod(out) != math.prod(x) // w[1] * w[0]:
            refuse(f"{label}'s output has shape {out}, but {math.prod(x) // w[1]} rows of its weights {w} give "
                   f"{w[0]} values each")
        _check_bias(label, shapes_in, w[0])
    elif name in SAME_SHAPE and shapes_in and shapes_in[0] is not None and out != shapes_in[0]:
        refuse(f"{label}'s output has shape {out}, but {name} keeps its input's shape {shapes_in[0]}")
    elif name in ELEMENTWISE and len(shapes_in) >= 2 and None not in shapes_in[:2]:
        want = _broadcast(shapes_in[0], shapes_in[1])
        if want is None or out != want:
            refuse(f"{label}'s inputs have shapes {shapes_in[0]} and {shapes_in[1]} (broadcast: {want}), but its "
                   f"output has shape {out}")
    elif name == "RESHAPE" and shapes_in and shapes_in[0] is not None and math.prod(out) != math.prod(shapes_in[0]):
        refuse(f"{label} reshapes {shapes_in[0]} ({math.prod(shapes_in[0])} elements) to {out} "
               f"({math.prod(out)} elements)")


def _broadcast(a: list[int], b: list[int]) -> list[int] | None:
    n = max(len(a), len(b))
    a, b = [1] * (n - len(a)) + a, [1] * (n - len(b)) + b
    if any(x != y and 1 not in (x, y) for x, y in zip(a, b)):
        return None
    return [x if y == 1 else y for x, y in zip(a, b)]


def _check_bias(label: str, shapes_in, channels: int) -> None:
    if len(shapes_in) > 2 and shapes_in[2] is not None and math.prod(shapes_in[2]) != channels:
        refuse(f"{label}'s bias has shape {shapes_in[2]}; it needs one value per output channel ({channels})")


def _check_conv(label: str, name: str, o, shapes_in, out) -> None:
    x, w = shapes_in[0], shapes_in[1]
    if name == "CONV_2D":
        channels = w[0]
        if w[3] <= 0 or x[3] % w[3]:
            refuse(f"{label}'s filter {w} takes {w[3]} input channels, which do not divide its input's {x[3]}")
    else:
        channels = w[3]
        if w[0] != 1 or x[3] <= 0 or channels % x[3]:
            refuse(f"{label}'s filter {w} does not fit its input {x} (depthwise filters are [1, h, w, channels], "
                   "a multiple of the input's channels)")
    _check_bias(label, shapes_in, channels)
    if o is None:
        return
    want = [x[0], _out_size(x[1], w[1], o.strideH, o.dilationHFactor, o.padding),
            _out_size(x[2], w[2], o.strideW, o.dilationWFactor, o.padding), channels]
    if out != want:
        refuse(f"{label}'s output has shape {out}, but its input {x} and filter {w} give {want}")


DCM_BYTES = 16  # the DECODE common metadata ahead of a LUT's value tables (decode_state.h)


def _constant_data(t, buffers) -> bytes:
    data = buffers[t.buffer].data
    return bytes(data) if data is not None else b""


def check_decode(label: str, op, tensors, buffers) -> None:
    """A ``TFLM_DECODE`` operator's (encoded, ancillary) input pairs hold what its LUT decoder
    (decode_state_lut.cc) reads without checking: the 16-byte metadata, enough index bits for
    every element of the output, and a value table per channel."""
    ins = [int(v) for v in (op.inputs if op.inputs is not None else [])]
    outs = [int(v) for v in op.outputs]
    if len(ins) != 2 * len(outs) or min(ins, default=-1) < 0:
        refuse(f"{label} has inputs {ins} for {len(outs)} output(s); DECODE takes an (encoded, ancillary) pair of "
               "constant tensors per output")

    for j, out in enumerate(outs):
        (e, encoded), (a, ancillary) = ((v, _constant_data(tensors[v], buffers)) for v in ins[2 * j:2 * j + 2])
        if len(ancillary) < DCM_BYTES:
            refuse(f"{label}'s ancillary {describe_tensor(a, tensors[a])} holds {len(ancillary)} bytes, less than "
                   f"the {DCM_BYTES}-byte DECODE metadata")
        if ancillary[0] != 0:  # not a LUT: TFLM's other decoders check for themselves
            continue
        bits, stride = ancillary[5] & 0x07, ancillary[6]
        count = math.prod(int(d) for d in (tensors[out].shape if tensors[out].shape is not None else []))
        q = tensors[out].quantization
        channels = max(1, len(q.scale) if q is not None and q.scale is not None else 1)
        if bits == 0 or len(encoded) * 8 < count * bits:
            refuse(f"{label}'s encoded {describe_tensor(e, tensors[e])} holds {len(encoded)} bytes, but {count} "
                   f"{bits}-bit indices for its output {describe_tensor(out, tensors[out])} need "
                   f"{-(-count * bits // 8)}")
        item = max(1, ITEM_BITS.get(_enum_names(_schema().TensorType).get(tensors[out].type, ""), 8) // 8)
        if stride < 1 or len(ancillary) - DCM_BYTES < channels * stride * item:
            refuse(f"{label}'s ancillary {describe_tensor(a, tensors[a])} holds "
                   f"{len(ancillary) - DCM_BYTES} bytes of value tables, but {channels} channel(s) of {stride} "
                   "values need more")
