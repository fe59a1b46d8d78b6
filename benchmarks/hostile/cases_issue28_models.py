"""Cases of issue 28 (round 3), models: hand-edited flatbuffers, an ``--inputs`` file that is not
a ``.npy``, and a small valid int8 model that must run everywhere.

Expected as issue 28 demands after its fix: one model check before any interpreter refuses a
malformed flatbuffer with a one-paragraph error naming the file (exit 1), never a traceback or a
crash reported as another cause; a valid model is never refused."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Callable

from . import model_files
from .checks import report_of
from .registry import CaseList, Ctx

CASES = CaseList("issue28")
case = CASES.case

PROFILE_TIMEOUT = 900  # a whole profile builds TFLM for a Cortex-M and counts under QEMU
FIRMWARE_TIMEOUT = 600  # a host build of a new model (TFLM's objects come from ccache)
#: causes a message must not give for a malformed model (it is not a crash of TFLM's, nor a scale)
WRONG_CAUSES = ("degenerate quantization", "killed the process", "this is a bug in asc")


def _validate_edited(c: Ctx, edit, *, src: Path | None = None) -> list:
    """``asc validate`` of a copy of ``src`` (default the fixture export's model.tflite) alone in
    CASE/m/edited.tflite after ``edit`` changed one field of its flatbuffer."""
    model = model_files.edited_model(src or c.fx.export / "model.tflite", c.dir / "m" / "edited.tflite", edit)
    return ["validate", model]


# ---------------------------------------------------------------------------- hand-edited flatbuffers
case("validate", "a hand-edited .tflite: an operator's opcode index out of range", "E1", ["edited.tflite"],
     forbid=WRONG_CAUSES)(lambda c: _validate_edited(c, model_files.opcode_out_of_range))
case("validate", "a hand-edited .tflite: the output shape does not match what its operator writes", "E1",
     ["edited.tflite"], forbid=WRONG_CAUSES)(lambda c: _validate_edited(c, model_files.output_shape_grown))
case("validate", "a hand-edited .tflite: input scale 0", "E1", ["edited.tflite"], forbid=WRONG_CAUSES)(
    lambda c: _validate_edited(c, model_files.input_scale_zero))
case("validate", "a hand-edited .tflite: the weight buffer cut short", "E1", ["edited.tflite"], forbid=WRONG_CAUSES)(
    lambda c: _validate_edited(c, model_files.weights_cut_short))
case("validate", "a hand-edited .tflite: no operators at all", "E1", ["edited.tflite"], forbid=WRONG_CAUSES)(
    lambda c: _validate_edited(c, model_files.no_operators))
case("validate", "the arena measurement fails (fully connected weight shape transposed)", "E1", ["edited.tflite"],
     forbid=WRONG_CAUSES)(lambda c: _validate_edited(c, model_files.fully_connected_weights_transposed,
                                                     src=model_files.small_model(c)))


def _validate_npz(c: Ctx, arrays: dict) -> list:
    """``asc validate`` of a copy of the fixture export's model with ``--inputs x.npz`` holding ``arrays``."""
    import numpy as np  # the script's own dependency for making test inputs

    model = c.dir / "m" / "model.tflite"
    model.parent.mkdir()
    model.write_bytes((c.fx.export / "model.tflite").read_bytes())
    np.savez(c.dir / "x.npz", **{k: np.zeros(shape, np.int8) for k, shape in arrays.items()})
    return ["validate", model, "--inputs", c.dir / "x.npz"]


def _used_the_npz(c: Ctx) -> Callable[[subprocess.CompletedProcess], str | None]:
    """The run's validation report records the 2 inputs of x.npz (issue 28: an .npz of one array is that array)."""
    def check(_: subprocess.CompletedProcess) -> str | None:
        report = c.dir / "m" / "model.validation" / "validation_report.json"
        if not report.is_file():
            return f"no {report}"
        used = json.loads(report.read_text()).get("inputs", {})
        return None if used.get("count") == 2 and str(used.get("path", "")).endswith("x.npz") else \
            f"the report's inputs are {used}, not x.npz's 2 rows"
    return check


@case("validate", "--inputs X.npz holding one int8 array (that array is the inputs)", "H")
def _(c):
    argv = _validate_npz(c, {"x": (2, 128, 58, 1)})
    c.check = _used_the_npz(c)
    return argv


case("validate", "--inputs X.npz holding two arrays (which one is meant?)", "E1|E2", ["x.npz"])(
    lambda c: _validate_npz(c, {"x": (2, 128, 58, 1), "y": (2, 128, 58, 1)}))


# ---------------------------------------------------------------------------- a valid small model
def _small_model_report(c: Ctx, command: str, report: str, *extra) -> list:
    """``asc COMMAND`` of the small valid int8 model (alone in CASE/small/), checked to write a
    ``report`` of that model's bytes that passed beside it."""
    model = model_files.small_model(c)
    c.check = report_of(model, model.parent, report, passed=True)
    return [command, model, *extra]


case("validate", "a valid 2.4-KB int8 model (conv, mean, fully connected, softmax)", "H")(
    lambda c: _small_model_report(c, "validate", "validation_report.json"))
case("firmware", "a valid 2.4-KB int8 model (conv, mean, fully connected, softmax)", "H", timeout=FIRMWARE_TIMEOUT)(
    lambda c: _small_model_report(c, "firmware", "firmware_report.json", "--targets", "host"))
case("profile", "a valid 2.4-KB int8 model (conv, mean, fully connected, softmax)", "H", timeout=PROFILE_TIMEOUT)(
    lambda c: _small_model_report(c, "profile", "profile_report.json"))
