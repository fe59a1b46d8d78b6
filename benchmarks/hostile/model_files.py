"""Model files the issue-28 cases need that ``asc`` does not make: a small valid int8 model (made
once per WORK folder by make_small_model.py in a child process) and hand-edited copies of a
flatbuffer, each with one field changed as a user's tool or hex editor might."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Callable

from .registry import Ctx, SetupError

SMALL_MODEL = "small_int8.tflite"
MAKE_TIMEOUT = 600  # seconds to build the small model (TensorFlow's start-up on a busy machine)


def small_model(c: Ctx, name: str = SMALL_MODEL) -> Path:
    """A copy, alone in CASE/small/, of the small valid int8 model (conv, mean, fully connected,
    softmax), built once into WORK/extra/."""
    cached = c.fx.extra / SMALL_MODEL
    if not cached.is_file():
        cached.parent.mkdir(parents=True, exist_ok=True)
        script = Path(__file__).with_name("make_small_model.py")
        p = subprocess.run([sys.executable, str(script), str(cached)], capture_output=True, text=True,
                           timeout=MAKE_TIMEOUT, env=c.env)
        if p.returncode != 0 or not cached.is_file():
            raise SetupError(f"could not make the small int8 model: {p.stderr[-1500:]}")
    out = c.dir / "small" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(cached.read_bytes())
    return out


def _schema():
    # the flatbuffer schema of the pinned tflite-micro package (a dependency of the toolkit)
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated

    return schema_py_generated


def edited_model(src: Path, dst: Path, edit: Callable) -> Path:
    """Write ``dst``: ``src``'s flatbuffer after ``edit(model)`` changed its object tree
    (the schema's ``ModelT``), repacked."""
    import flatbuffers  # with the schema above: only the cases that edit a model need it

    s = _schema()
    model = s.ModelT.InitFromObj(s.Model.GetRootAsModel(Path(src).read_bytes(), 0))
    edit(model)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(bytes(builder.Output()))
    return dst


# ---------------------------------------------------------------------------- the edits
def opcode_out_of_range(model) -> None:
    """The first operator points past the model's operator-code table."""
    model.subgraphs[0].operators[0].opcodeIndex = len(model.operatorCodes) + 5


def output_shape_grown(model) -> None:
    """The model's output tensor claims one more class than its operator writes."""
    import numpy as np  # numpy comes with the schema's object API

    graph = model.subgraphs[0]
    out = graph.tensors[graph.outputs[0]]
    out.shape = np.array([*out.shape[:-1], out.shape[-1] + 1], dtype=np.int32)
    if out.shapeSignature is not None and len(out.shapeSignature):
        out.shapeSignature = out.shape.copy()


def input_scale_zero(model) -> None:
    import numpy as np

    graph = model.subgraphs[0]
    graph.tensors[graph.inputs[0]].quantization.scale = np.array([0.0], dtype=np.float32)


def weights_cut_short(model) -> None:
    """The largest constant buffer (weights) loses its second half."""
    buf = max(model.buffers, key=lambda b: 0 if b.data is None else len(b.data))
    buf.data = buf.data[: len(buf.data) // 2]


def no_operators(model) -> None:
    model.subgraphs[0].operators = []


def fully_connected_weights_transposed(model) -> None:
    """The fully connected layer's weight shape (out, in) written as (in, out): the same bytes and
    size, so only TFLM's preparation of the operator can see it."""
    import numpy as np

    fc = _schema().BuiltinOperator.FULLY_CONNECTED
    graph = model.subgraphs[0]
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        if max(code.builtinCode, code.deprecatedBuiltinCode) == fc:
            weights = graph.tensors[op.inputs[1]]
            weights.shape = np.array(list(reversed(list(weights.shape))), dtype=np.int32)
            return
    raise SetupError("the model has no FULLY_CONNECTED operator to edit")
