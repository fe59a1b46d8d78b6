"""Cases of validate: exports damaged, copied, moved or replaced, and its option values."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from .checks import described, ok_if, report_passed, same_validation
from .files import edit_json, edit_text, replace_file
from .registry import CaseList

CASES = CaseList("validate")
case = CASES.case


def _validate(c, model: Path, *extra, data: Path | None = None, work: Path | None = None) -> list:
    return ["validate", model, "--data", data or c.fx.data, "--work", work or c.fx.work, *extra]


def _allow_validation(c, export: Path) -> None:
    """The reports validate adds to an export (documented), and the export's stage marker, which records
    their sha256 as asc's (keras_asc/ownership.py: adding_files)."""
    c.allow(*(export / n for n in ("validation_report.json", "validation_report.md", "validation_per_device.png",
                                   "validation_output_diff.png", "validation_tflm_outputs.npy", ".asc-stage.json")))
case("validate", "MODEL does not exist", "E1", ["nowhere"])(lambda c: _validate(c, c.dir / "nowhere" / "model.tflite"))


@case("validate", "MODEL is the export folder, not its model.tflite", "H")
def _(c):
    r = c.run_copy()  # validate writes its reports into the export (documented): a copy of the fixture's
    _allow_validation(c, r / "export")
    c.check = report_passed(r / "export" / "validation_report.json")
    return _validate(c, r / "export")


@case("validate", "model.tflite copied elsewhere without its config.json", "E1|W", ["config.json", "--data"])
def _(c):
    (c.dir / "m").mkdir()
    shutil.copy(c.fx.export / "model.tflite", c.dir / "m" / "model.tflite")
    return _validate(c, c.dir / "m" / "model.tflite")


@case("validate", "a truncated model.tflite alone in a folder (no export around it)", "E1", ["model.tflite"])
def _(c):
    (c.dir / "m").mkdir()
    data = (c.fx.export / "model.tflite").read_bytes()
    (c.dir / "m" / "model.tflite").write_bytes(data[: len(data) // 2])
    return _validate(c, c.dir / "m" / "model.tflite")


@case("validate", "model.tflite truncated to half", "E1", ["model.tflite"])
def _(c):
    r = c.run_copy()
    p = r / "export" / "model.tflite"
    replace_file(p, p.read_bytes()[: p.stat().st_size // 2])
    return _validate(c, p)


@case("validate", "model.tflite empty (0 bytes)", "E1", ["model.tflite"])
def _(c):
    r = c.run_copy()
    replace_file(r / "export" / "model.tflite", b"")
    return _validate(c, r / "export" / "model.tflite")


@case("validate", "model.tflite random bytes", "E1", ["model.tflite"])
def _(c):
    r = c.run_copy()
    replace_file(r / "export" / "model.tflite", bytes(range(256)) * 16)
    return _validate(c, r / "export" / "model.tflite")


@case("validate", "model.tflite replaced by another run's model", "E1", ["model.tflite"])
def _(c):
    r = c.run_copy()
    replace_file(r / "export" / "model.tflite", (c.fx.export2 / "model.tflite").read_bytes())
    return _validate(c, r / "export" / "model.tflite")


@case("validate", "the export's config.json truncated", "E1", ["config.json"])
def _(c):
    r = c.run_copy()
    replace_file(r / "export" / "config.json", (r / "export" / "config.json").read_bytes()[:300])
    return _validate(c, r / "export" / "model.tflite")


def _edited_config(c, edit) -> list:
    """Validate a copy of the fixture export whose config.json ``edit(config)`` changed; checked to
    give the unedited export's int8 scores."""
    r = c.run_copy()
    edit_json(r / "export" / "config.json", edit)
    _allow_validation(c, r / "export")
    c.check = same_validation(c.fx.export, r / "export")
    return _validate(c, r / "export" / "model.tflite")


case("validate", "the export's config.json input mean edited (+10 dB)", "E1|W", ["config.json"])(
    lambda c: _edited_config(c, lambda d: d["input"].update(mean=[m + 10 for m in d["input"]["mean"]])))
case("validate", "the export's config.json output scale edited (x2)", "E1|W", ["config.json"])(
    lambda c: _edited_config(c, lambda d: d["output"].update(scale=d["output"]["scale"] * 2)))


@case("validate", "one byte of model_data.cc's array edited", "E1", ["model_data.cc"])
def _(c):
    r = c.run_copy()
    edit_text(r / "export" / "model_data.cc", lambda t: t.replace("0x1c,", "0x1d,", 1))
    return _validate(c, r / "export" / "model.tflite")


@case("validate", "kTensorArenaSize in model_settings.h edited", "E1", ["model_settings.h"])
def _(c):
    r = c.run_copy()
    edit_text(r / "export" / "model_settings.h",
              lambda t: re.sub(r"kTensorArenaSize = \d+;", "kTensorArenaSize = 1024;", t))
    return _validate(c, r / "export" / "model.tflite")


@case("validate", "calibration.csv edited", "E1", ["calibration.csv"])
def _(c):
    r = c.run_copy()
    edit_text(r / "export" / "calibration.csv", lambda t: t + "audio/extra.wav,airport,a,x\n")
    return _validate(c, r / "export" / "model.tflite")


@case("validate", "model_input.h deleted", "E1", ["model_input.h"])
def _(c):
    r = c.run_copy()
    (r / "export" / "model_input.h").unlink()
    return _validate(c, r / "export" / "model.tflite")


@case("validate", "the run retrained after export (model.keras replaced)", "E1", ["model.keras"])
def _(c):
    r = c.run_copy()
    replace_file(r / "model.keras", (c.fx.run2 / "model.keras").read_bytes())
    return _validate(c, r / "export" / "model.tflite")


@case("validate", "the export folder copied away from its run", "W|E1", ["staleness", "model.keras"])
def _(c):
    e = Path(shutil.copytree(c.fx.export, c.dir / "elsewhere" / "export"))
    _allow_validation(c, e)
    c.check = report_passed(e / "validation_report.json")
    return _validate(c, e / "model.tflite")


@case("validate", "the run (with its export) renamed", "H")
def _(c):
    r = c.run_copy("renamed run")
    _allow_validation(c, r / "export")
    c.check = report_passed(r / "export" / "validation_report.json", clips=80)
    return _validate(c, r / "export" / "model.tflite")


@case("validate", "an export copied next to another run (RUN2/export)", "E1", ["model.keras"])
def _(c):
    r2 = c.run_copy("run2", src=c.fx.run2)
    shutil.rmtree(r2 / "export")
    shutil.copytree(c.fx.export, r2 / "export")
    return _validate(c, r2 / "export" / "model.tflite")


case("validate", "--max-drop nan", "E2", ["--max-drop"])(
    lambda c: _validate(c, c.fx.export / "model.tflite", "--max-drop", "nan"))


@case("validate", "--max-drop 0", "H|E1", ["max-drop", "drop"])
def _(c):
    r = c.run_copy()
    _allow_validation(c, r / "export")
    c.check = report_passed(r / "export" / "validation_report.json")
    return _validate(c, r / "export" / "model.tflite", "--max-drop", "0")


@case("validate", "--data with an evaluate clip missing", "E1", [".wav"])
def _(c):
    d = c.data_copy()
    (d / c.fx.clip("evaluate", 3)).unlink()
    return _validate(c, c.fx.export / "model.tflite", data=d, work=c.dir / "w")


case("validate", "--work is a user file", "E1", ["notes.txt"])(
    lambda c: _validate(c, c.fx.export / "model.tflite", work=c.user_file("notes.txt")))


@case("validate", "MODEL is a symlink to model.tflite in another folder", "E1|H", ["config.json"])
def _(c):
    r = c.run_copy()
    (c.dir / "m").mkdir()
    (c.dir / "m" / "model.tflite").symlink_to(r / "export" / "model.tflite")
    _allow_validation(c, c.dir / "m")
    c.check = described("a validation report was written", lambda p: ok_if((c.dir / "m" / "validation_report.json").is_file() or
                              (r / "export" / "validation_report.json").is_file(), "no report"))
    return _validate(c, c.dir / "m" / "model.tflite")


@case("validate", "an export folder with a user's NOTES.md", "H")
def _(c):
    r = c.run_copy()
    notes = c.user_file("run/export/NOTES.md")
    _allow_validation(c, r / "export")
    c.keep(notes)
    c.check = report_passed(r / "export" / "validation_report.json", clips=80)
    return _validate(c, r / "export" / "model.tflite")
