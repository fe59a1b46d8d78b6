"""Cases of issue 28 (round 3), lost and silently wrong: a bundle rerun over the user's edits, and
a ``.tflite`` inside an export folder taken for the export's own ``model.tflite``.

Expected as issue 28 demands after its fix: a rerun keeps every file the user changed or wrote
(refusing, naming the file, when a file it wrote was edited); a command given ``X.tflite`` works on
``X.tflite``'s bytes (its report records their sha256) and writes beside it, never into the
export's own report folders."""
from __future__ import annotations

import shutil
from pathlib import Path

from .checks import described, ok_if, report_of
from .files import edit_text
from .registry import CaseList, Ctx

CASES = CaseList("issue28")
case = CASES.case

PROFILE_TIMEOUT = 900  # a whole profile builds TFLM for a Cortex-M and counts under QEMU


# ---------------------------------------------------------------------------- bundle reruns
def _bundle_rerun(c: Ctx, change) -> list:
    """A Cortex-M4 bundle of the fixture export made in CASE/bundle by ``asc bundle``, then
    ``change(bundle)`` as the user would (returns the paths that must survive unchanged), then the
    same command again. The bundle's own files may be replaced; the kept paths may not."""
    b = c.dir / "bundle"
    argv = ["bundle", c.fx.export, "--out", b, "--target", "cortex-m4"]
    c.asc(argv)
    kept = change(b)
    c.allow(b)
    c.keep(*kept)
    return argv


def _edit_board_ld(b: Path) -> list[Path]:
    edit_text(b / "board" / "board.ld", lambda t: "/* my board: 1 MiB flash at 0x08000000 */\n" + t)
    return [b / "board" / "board.ld"]


def _edit_main_cc(b: Path) -> list[Path]:
    edit_text(b / "app" / "main.cc", lambda t: "// my microphone driver goes here\n" + t)
    return [b / "app" / "main.cc"]


def _user_file_in_build(b: Path) -> list[Path]:
    (b / "build").mkdir(exist_ok=True)
    (b / "build" / "flash_log.txt").write_text("flashed to my board on Monday: 12.3 ms\n")
    return [b / "build" / "flash_log.txt"]


case("bundle", "rerun over its own bundle whose board/board.ld the user edited", "E1|W", ["board.ld"])(
    lambda c: _bundle_rerun(c, _edit_board_ld))
case("bundle", "rerun over its own bundle whose app/main.cc the user edited", "E1|W", ["main.cc"])(
    lambda c: _bundle_rerun(c, _edit_main_cc))


@case("bundle", "rerun over its own bundle with a user file in build/", "H|W|E1", ["build", "flash_log.txt"])
def _(c):
    argv = _bundle_rerun(c, _user_file_in_build)
    b = c.dir / "bundle"
    c.check = described("bundle.json written again", lambda p: ok_if((b / "bundle.json").is_file(), "no bundle.json"))
    return argv


# ---------------------------------------------------------------------------- a .tflite inside an export
def _export_with_other(c: Ctx) -> tuple[Path, Path]:
    """A copy of the fixture run whose export also holds other.tflite: the second run's int8 model
    (valid, and not the export's). Returns (export, other.tflite). The commands get --data and
    --work as for the export (a user's habit); the model is still other.tflite."""
    r = c.run_copy()
    other = r / "export" / "other.tflite"
    shutil.copyfile(c.fx.export2 / "model.tflite", other)
    return r / "export", other


@case("profile", "EXPORT/model_uncompressed.tflite of a compressed export", "H", timeout=PROFILE_TIMEOUT)
def _(c):
    r = c.run_copy()
    c.asc(["export", r, "--data", c.fx.data, "--work", c.fx.work, "--arena-targets", "none", "--calibration-size", "20",
           "--compress"], timeout=PROFILE_TIMEOUT)
    model = r / "export" / "model_uncompressed.tflite"
    c.check = report_of(model, r / "export", "profile_report.json", not_in=(r / "export" / "profile",))
    return ["profile", model]


@case("bundle", "EXPORT/other.tflite (a valid model that is not the export's)", "H|E1", ["other.tflite"])
def _(c):
    export, other = _export_with_other(c)
    c.check = report_of(other, c.dir / "b", "bundle.json")
    return ["bundle", other, "--out", c.dir / "b"]


@case("validate", "EXPORT/other.tflite (a valid model that is not the export's)", "H", ["other.tflite"],
      forbid=("modified or replaced",))
def _(c):
    export, other = _export_with_other(c)
    c.check = report_of(other, export, "validation_report.json")
    return ["validate", other, "--data", c.fx.data, "--work", c.fx.work]


@case("firmware", "EXPORT/other.tflite (a valid model that is not the export's)", "H", ["other.tflite"],
      forbid=("modified or replaced",))
def _(c):
    export, other = _export_with_other(c)
    c.check = report_of(other, export, "firmware_report.json")
    return ["firmware", other, "--data", c.fx.data, "--work", c.fx.work, "--targets", "host"]
