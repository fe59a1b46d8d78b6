"""Fuzz: seeded single-field mutations of three int8 models through the model check and TFLM.

Each mutation changes one field of the flatbuffer (an index, a shape dimension, a type, a
scale, a zero point, a buffer's length, an operator option, ...) of one of three models: the
tiny export (``tiny_export``), the MLPerf Tiny ResNet-8 reference model, and a small model made
here (conv, mean, fully connected, softmax). Every mutation must end in one of:

* ``refused``: :func:`tflite_export.model_check.check_model` raises ``ModelCheckError``, one
  paragraph naming the file;
* ``ran``: accepted, and TFLM's Python runtime loads it with a large arena and runs it to the end
  on two inputs (zeros and seeded random values). What the mutated numbers compute is the
  model's business: a changed scale legitimately changes the outputs;
* ``tflm refused``: accepted, and TFLM itself refuses it with an error (what
  :func:`tflite_export.arena.measure_arena` turns into one ``ArenaError`` paragraph with TFLM's
  reason).

Never a traceback of the check, a TFLM crash (signal) or a hang. Accepted mutations run in a child
process (``python -m tests.tflite_export.test_model_fuzz MANIFEST``), each in its own forked,
time-bounded trial (:func:`tflite_export.arena.isolated`), so a crash fails the test naming the
mutation instead of killing pytest.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

MLPERF_RESNET = Path("/work/shared/reference/mlperf_tiny/ic_resnet8_int8.tflite")
MUTATIONS_PER_MODEL = 340  # three models: over 1,000 in all
TRIAL_TIMEOUT = 30.0  # seconds per accepted mutation's TFLM run (a hang is a failure)
LARGE_ARENA = 16 << 20
REPO = Path(__file__).resolve().parents[2]

#: What each kind of field is set to (besides values derived from the model, see _values).
INT_EDGES = (-1, 0, 1, 2, 3, 7, 127, 128, 255, 256, 65535, (1 << 31) - 1, -(1 << 31))
SCALE_EDGES = (0.0, -1.0, float("nan"), float("inf"), 1e-45, 1e-30, 1e30)
ZERO_POINT_EDGES = (-129, 128, 255, -32768, 32767, (1 << 31) - 1, 1 << 40)


@dataclasses.dataclass(frozen=True)
class Mutation:
    model: str  # which of the three models
    index: int  # its number within that model's seeded sequence
    field: str  # the field's path in the schema's object API
    value: str  # what it was set to (repr)

    def describe(self) -> str:
        return f"{self.model} mutation {self.index}: {self.field} = {self.value}"


def _pack(model) -> bytes:
    import flatbuffers

    b = flatbuffers.Builder(0)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _fields(model) -> dict[str, list]:
    """Every mutable field of ``model`` by kind: kind -> [(path, getter, setter)]."""
    g = model.subgraphs[0]
    out: dict[str, list] = {k: [] for k in (
        "opcode", "op_input", "op_output", "graph_io", "tensor_buffer", "tensor_type", "shape", "scale",
        "zero_point", "quantized_dimension", "buffer_data", "option", "builtin_code", "structure")}

    def item(kind, path, obj, attr, idx=None):
        if idx is None:
            out[kind].append((path, lambda: getattr(obj, attr), lambda v: setattr(obj, attr, v)))
        else:
            arr = getattr(obj, attr)
            out[kind].append((path, lambda: arr[idx], lambda v: _set_item(obj, attr, idx, v)))

    for k, op in enumerate(g.operators):
        item("opcode", f"operators[{k}].opcodeIndex", op, "opcodeIndex")
        for j in range(len(op.inputs)):
            item("op_input", f"operators[{k}].inputs[{j}]", op, "inputs", j)
        for j in range(len(op.outputs)):
            item("op_output", f"operators[{k}].outputs[{j}]", op, "outputs", j)
        opts = op.builtinOptions
        for attr, v in (vars(opts).items() if opts is not None else ()):
            if isinstance(v, (bool, int, float, np.integer, np.floating)):
                item("option", f"operators[{k}].builtinOptions.{attr}", opts, attr)
    for role in ("inputs", "outputs"):
        for j in range(len(getattr(g, role))):
            item("graph_io", f"subgraph.{role}[{j}]", g, role, j)
    for i, t in enumerate(g.tensors):
        item("tensor_buffer", f"tensors[{i}].buffer", t, "buffer")
        item("tensor_type", f"tensors[{i}].type", t, "type")
        for d in range(len(t.shape) if t.shape is not None else 0):
            item("shape", f"tensors[{i}].shape[{d}]", t, "shape", d)
        q = t.quantization
        if q is not None and q.scale is not None and len(q.scale):
            c = len(q.scale) // 2
            item("scale", f"tensors[{i}].quantization.scale[{c}]", q, "scale", c)
            item("zero_point", f"tensors[{i}].quantization.zeroPoint[{c}]", q, "zeroPoint", c)
            item("quantized_dimension", f"tensors[{i}].quantization.quantizedDimension", q, "quantizedDimension")
        buf = model.buffers[t.buffer]
        if buf.data is not None and len(buf.data):
            out["buffer_data"].append((f"buffers[{t.buffer}].data (of tensor {i}) length", lambda b=buf: len(b.data),
                                       lambda n, b=buf: setattr(b, "data", _resized(b.data, n))))
    for c, oc in enumerate(model.operatorCodes):
        item("builtin_code", f"operatorCodes[{c}].builtinCode", oc, "builtinCode")
    out["structure"] += [
        ("subgraph.operators (all removed)", lambda: len(g.operators), lambda _: setattr(g, "operators", [])),
        ("model.version", lambda: model.version, lambda v: setattr(model, "version", v)),
        ("operators (one removed)", lambda: len(g.operators), lambda k: g.operators.pop(int(k) % len(g.operators))),
        ("subgraphs (one duplicated)", lambda: 1, lambda _: model.subgraphs.append(copy.deepcopy(g))),
    ]
    return {k: v for k, v in out.items() if v}


def _same(a, b) -> bool:
    numbers = (int, float, np.number)
    return isinstance(a, numbers) and isinstance(b, numbers) and float(a) == float(b)


def _set_item(obj, attr, idx, v) -> None:
    arr = list(getattr(obj, attr))
    arr[idx] = v
    setattr(obj, attr, arr)


def _resized(data, n: int) -> np.ndarray:
    data = np.asarray(data, np.uint8)
    return data[:n] if n <= len(data) else np.concatenate([data, np.zeros(n - len(data), np.uint8)])


def _values(kind: str, current, model, rng) -> list:
    g = model.subgraphs[0]
    n_t, n_b, n_c = len(g.tensors), len(model.buffers), len(model.operatorCodes)
    if kind in ("op_input", "op_output", "graph_io"):
        return [-1, n_t, n_t + 5, int(rng.integers(n_t)), current + 1, current - 1]
    if kind == "opcode":
        return [n_c, n_c + 3, -1, int(rng.integers(n_c)), 255]
    if kind == "tensor_buffer":
        return [n_b, n_b + 1, 0, int(rng.integers(n_b)), current + 1]
    if kind == "tensor_type":
        return [int(v) for v in rng.integers(0, 25, size=4)] + [99, 9, 2, 0, 7, 17]
    if kind == "shape":
        return [0, -1, current + 1, max(current - 1, 0), current * 2, 1 << 20, (1 << 31) - 1]
    if kind == "scale":
        return [*SCALE_EDGES, float(current) * 10, float(current) / 10, float(current) * 1e-3]
    if kind == "zero_point":
        return [*ZERO_POINT_EDGES, int(current) + 1, int(current) - 1, 127, -128]
    if kind == "quantized_dimension":
        return [current + 1, 3, 5, -1, 0]
    if kind == "buffer_data":
        return [0, current // 2, current - 1, current + 1, current + 16]
    if kind == "builtin_code":
        return [int(rng.integers(0, 210)), 32, 255, 1000]
    if kind == "structure":
        return [0, 1, 2, int(rng.integers(0, 8))]
    # an operator option: int, bool or float
    if isinstance(current, (float, np.floating)):
        return [0.0, -1.0, float("nan"), float("inf"), float(current) * 2]
    return [v for v in INT_EDGES if isinstance(current, (int, np.integer)) and not isinstance(current, bool)] or [
        not current]


def mutations(name: str, data: bytes, *, count: int, seed: int):
    """``count`` seeded single-field mutations of flatbuffer ``data``: (Mutation, bytes) pairs;
    a mutation that the object API cannot even pack (a value out of its field's type) is
    replaced by the next draw."""
    from tflite_export.flatbuffer import read_model

    rng = np.random.default_rng(seed)
    pristine = read_model(data)
    kinds = sorted(_fields(pristine))
    made = 0
    while made < count:
        model = copy.deepcopy(pristine)
        fields = _fields(model)
        kind = kinds[int(rng.integers(len(kinds)))]
        path, get, put = fields[kind][int(rng.integers(len(fields[kind])))]
        current = get()
        choices = _values(kind, current, model, rng)
        value = choices[int(rng.integers(len(choices)))]
        if kind not in ("structure", "buffer_data") and _same(value, current):
            continue  # not a mutation
        try:
            put(value)
            blob = _pack(model)
        except Exception:  # struct.error etc.: not representable in the field's type
            continue
        yield Mutation(name, made, path, repr(value)), blob
        made += 1


# ----------------------------------------------------------------------------- the child
def _run_in_tflm(path: str, arena: int) -> dict:
    from tflite_export.tflm_runtime import TflmRunner

    data = Path(path).read_bytes()
    runner = TflmRunner(data, arena_bytes=arena, source=path)
    d = runner.input_details
    rng = np.random.default_rng(0)
    outs = []
    for x in (np.zeros(d["shape"], d["dtype"]), rng.integers(-128, 128, size=d["shape"]).astype(d["dtype"])):
        outs.append(runner.run(x))
    return {"output_elements": int(outs[-1].size)}


def _child(manifest: Path) -> None:
    """Run every model the manifest lists in its own forked trial; one JSON line per model."""
    from tflite_export.arena import isolated

    for path in json.loads(manifest.read_text()):
        t = isolated(lambda: _run_in_tflm(path, LARGE_ARENA), timeout=TRIAL_TIMEOUT)
        print(json.dumps({"path": path, "status": t.status, "error": t.error, "signal": t.signal,
                          "tflm_said": t.tflm_said, "value": t.value}), flush=True)


if __name__ == "__main__":
    _child(Path(sys.argv[1]))


# ----------------------------------------------------------------------------- the tests
def _outcomes(models: dict[str, bytes], tmp: Path, *, per_model: int) -> tuple[dict, list[str]]:
    """Every mutation's outcome: (counts by outcome, failures described)."""
    from keras_asc.errors import AscError
    from tflite_export.model_check import ModelCheckError, check_model

    counts: dict[str, int] = {}
    failures: list[str] = []
    accepted: dict[str, Mutation] = {}
    for seed, (name, data) in enumerate(sorted(models.items())):
        for m, blob in mutations(name, data, count=per_model, seed=seed):
            path = tmp / f"{name}_{m.index}.tflite"
            try:
                check_model(blob, source=str(path))
            except ModelCheckError as e:
                msg = str(e)
                if not msg.startswith(str(path)) or "\n" in msg:
                    failures.append(f"{m.describe()}: the refusal is not one paragraph naming the file: {msg!r}")
                counts["refused"] = counts.get("refused", 0) + 1
                continue
            except AscError as e:  # another clear error is acceptable too
                counts["refused"] = counts.get("refused", 0) + 1
                if "\n" in str(e):
                    failures.append(f"{m.describe()}: {type(e).__name__} of several paragraphs: {e}")
                continue
            except Exception as e:  # a traceback in the real command
                failures.append(f"{m.describe()}: the model check raised {type(e).__name__}: {e}")
                continue
            path.write_bytes(blob)
            accepted[str(path)] = m
    manifest = tmp / "manifest.json"
    manifest.write_text(json.dumps(sorted(accepted)))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "tests.tflite_export.test_model_fuzz", str(manifest)], cwd=REPO,
                          env=env, capture_output=True, text=True,
                          timeout=60 + TRIAL_TIMEOUT * max(len(accepted), 1) / 4)
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or len(results) != len(accepted):
        failures.append(f"the TFLM child exited {proc.returncode} after {len(results)} of {len(accepted)} models: "
                        f"{proc.stderr[-1500:]}")
    for r in results:
        m = accepted[r["path"]]
        if r["status"] == "ok":
            counts["ran"] = counts.get("ran", 0) + 1
        elif r["status"] == "error":
            counts["tflm refused"] = counts.get("tflm refused", 0) + 1
        elif r["status"] == "signal":
            failures.append(f"{m.describe()}: accepted by the model check, then TFLM crashed (signal {r['signal']}); "
                            f"TFLM said: {r['tflm_said']}")
        else:
            failures.append(f"{m.describe()}: accepted by the model check, then TFLM did not finish within "
                            f"{TRIAL_TIMEOUT:.0f} s")
    return counts, failures


@pytest.fixture(scope="module")
def hand_made() -> bytes:
    from tests.tflite_export.test_arena_probe import small_conv_mean_fc_model

    return small_conv_mean_fc_model()


def _assert_clean(counts: dict, failures: list[str], total: int) -> None:
    assert not failures, f"{len(failures)} of {total} mutations failed:\n" + "\n".join(failures)
    assert sum(counts.values()) == total
    assert counts.get("refused", 0) > 0 and counts.get("ran", 0) > 0, counts  # neither check nor fuzz is vacuous


@pytest.mark.slow  # about 35 s of CPU for the mutations and TFLM runs, plus the tiny export's training
def test_over_a_thousand_mutations_of_three_models_each_refused_or_run(tiny_export, hand_made, tmp_path):
    models = {"export": (tiny_export / "model.tflite").read_bytes(), "mlperf_resnet8": MLPERF_RESNET.read_bytes(),
              "hand_made": hand_made}
    counts, failures = _outcomes(models, tmp_path, per_model=MUTATIONS_PER_MODEL)
    _assert_clean(counts, failures, 3 * MUTATIONS_PER_MODEL)


@pytest.mark.slow
def test_mutations_of_a_lut_compressed_model_each_refused_or_run(tmp_path):
    from tests.tflite_export.test_model_check import lut_compressed_kws

    counts, failures = _outcomes({"lut_kws": lut_compressed_kws()}, tmp_path, per_model=200)
    _assert_clean(counts, failures, 200)


def test_mutations_of_the_hand_made_model_each_refused_or_run(hand_made, tmp_path):
    """The fast lane's share: 80 mutations of the small model."""
    counts, failures = _outcomes({"hand_made": hand_made}, tmp_path, per_model=80)
    _assert_clean(counts, failures, 80)


def test_mutations_are_seeded():
    data = MLPERF_RESNET.read_bytes()
    first = [(m, blob) for m, blob in mutations("r", data, count=5, seed=3)]
    assert first == [(m, blob) for m, blob in mutations("r", data, count=5, seed=3)]


def test_mutations_change_one_field():
    data = MLPERF_RESNET.read_bytes()
    from tflite_export.flatbuffer import read_model

    unchanged = _pack(read_model(data))
    assert all(blob != unchanged for _, blob in mutations("r", data, count=40, seed=1))
