"""Cases of firmware: exports damaged or moved, targets, clip counts, --from-audio, the TFLM archives."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from .checks import described, ok_if, report_passed
from .files import edit_text, read_audio, replace_file, write_audio
from .registry import CaseList

CASES = CaseList("firmware")
case = CASES.case


def _firmware(c, export: Path, *extra, data: Path | None = None, work: Path | None = None) -> list:
    args = ["firmware", export, "--data", data or c.fx.data, "--work", work or c.fx.work]
    if "--targets" not in extra:
        args += ["--targets", "host"]
    if "--host-clips" not in extra:
        args += ["--host-clips", "4"]
    return args + list(extra)


def _refirmware(c, *extra, want: dict | None = None) -> list:
    """``asc firmware`` of a copy of the fixture export, its report checked to pass with ``want``
    (default: 4 host clips)."""
    r = c.run_copy()
    c.allow(r / "export" / "firmware")
    c.check = report_passed(r / "export" / "firmware" / "firmware_report.json", **(want or {"host_clips": 4}))
    return _firmware(c, r / "export", *extra)


case("firmware", "EXPORT does not exist", "E1", ["nowhere"])(lambda c: _firmware(c, c.dir / "nowhere"))


@case("firmware", "EXPORT is model.tflite (a file)", "E1|H", ["model.tflite"])
def _(c):
    r = c.run_copy()
    c.allow(r / "export" / "firmware")
    c.check = report_passed(r / "export" / "firmware" / "firmware_report.json", host_clips=4)
    return _firmware(c, r / "export" / "model.tflite")


@case("firmware", "EXPORT is a model.tflite alone in a folder (no C sources, no config.json)", "E1|W",
      ["config.json", "--data", "--host-clips"])
def _(c):
    (c.dir / "m").mkdir()
    c.check = described("a firmware report that passed next to the model", lambda p: ok_if(
        any(json.loads(f.read_text()).get("passed") for f in (c.dir / "m").rglob("firmware_report.json")),
        "no passed firmware_report.json"))
    shutil.copy(c.fx.export / "model.tflite", c.dir / "m" / "model.tflite")
    return _firmware(c, c.dir / "m" / "model.tflite")


case("firmware", "EXPORT is the run folder", "E1", ["{F}/run"])(lambda c: _firmware(c, c.fx.run))


@case("firmware", "one byte of model_data.cc's array edited", "E1", ["model_data.cc"])
def _(c):
    r = c.run_copy()
    edit_text(r / "export" / "model_data.cc", lambda t: t.replace("0x1c,", "0x1d,", 1))
    return _firmware(c, r / "export")


@case("firmware", "kTensorArenaSize in model_settings.h lowered to 4096", "E1", ["model_settings.h"])
def _(c):
    r = c.run_copy()
    edit_text(r / "export" / "model_settings.h",
              lambda t: re.sub(r"kTensorArenaSize = \d+;", "kTensorArenaSize = 4096;", t))
    return _firmware(c, r / "export")


case("firmware", "--targets host,host", "E2", ["--targets"])(
    lambda c: _firmware(c, c.fx.export, "--targets", "host,host"))
case("firmware", "--targets ''", "E2", ["--targets"])(lambda c: _firmware(c, c.fx.export, "--targets", ""))
case("firmware", "--targets cortex-m3 (unknown)", "E2", ["--targets", "cortex-m3"])(
    lambda c: _firmware(c, c.fx.export, "--targets", "cortex-m3"))
case("firmware", "--chunk 100 without --from-audio", "W", ["--chunk"])(lambda c: _refirmware(c, "--chunk", "100"))
case("firmware", "--chunk 0", "E2", ["--chunk"])(lambda c: _firmware(c, c.fx.export, "--from-audio", "--chunk", "0"))
case("firmware", "--chunk 2049 (above the microphone buffer)", "E2", ["--chunk"])(
    lambda c: _firmware(c, c.fx.export, "--from-audio", "--chunk", "2049"))
case("firmware", "--clips 5 with only the host target", "W", ["--clips"])(lambda c: _refirmware(c, "--clips", "5"))
case("firmware", "--host-clips 0", "E2", ["--host-clips"])(lambda c: _firmware(c, c.fx.export, "--host-clips", "0"))
case("firmware", "--host-clips 1000 (more than the 80 evaluate clips)", "H|W", ["--host-clips"])(
    lambda c: _refirmware(c, "--host-clips", "1000", want=dict(host_clips=80)))
case("firmware", "--host-clips 3", "H")(lambda c: _refirmware(c, "--host-clips", "3", want=dict(host_clips=3)))
case("firmware", "--from-audio --chunk 1 (one sample per call)", "H")(
    lambda c: _refirmware(c, "--host-clips", "2", "--from-audio", "--chunk", "1", want=dict(host_clips=2, from_audio=True)))


@case("firmware", "--from-audio with an evaluate WAV replaced by other audio (same size, same mtime)", "E1", [".wav"])
def _(c):
    d = c.data_copy()
    a, b = d / c.fx.clip("evaluate", 0), d / c.fx.clip("evaluate", 1)
    st = a.stat()
    replace_file(a, b.read_bytes())
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))
    w = c.work_copy()
    return _firmware(c, c.fx.export, "--from-audio", "--host-clips", "2", data=d, work=w)


@case("firmware", "--from-audio with a 48 kHz stereo evaluate WAV (features recomputed)", "E1", [".wav"])
def _(c):
    import librosa
    import numpy as np

    d = c.data_copy()
    p = d / c.fx.clip("evaluate", 0)
    x, sr = read_audio(p)
    y = librosa.resample(x[:, 0], orig_sr=sr, target_sr=48000)
    write_audio(p, np.stack([y, y], axis=1), 48000)
    r = c.run_copy()
    return _firmware(c, r / "export", "--from-audio", "--host-clips", "2", data=d, work=c.dir / "w")


@case("firmware", "--third-party copy missing kissfft.tar.gz", "E1", ["kissfft"])
def _(c):
    tp = c.tp_copy()
    (tp / "kissfft.tar.gz").unlink()
    return _firmware(c, c.fx.export, "--third-party", tp)


@case("firmware", "--third-party copy with a truncated tflite-micro.tar.gz (SHA256SUMS present)", "E1",
      ["tflite-micro.tar.gz"])
def _(c):
    tp = c.tp_copy()
    p = tp / "tflite-micro.tar.gz"
    replace_file(p, p.read_bytes()[: p.stat().st_size // 2])
    return _firmware(c, c.fx.export, "--third-party", tp)


@case("firmware", "--third-party copy with a truncated archive and no SHA256SUMS (fresh build cache)", "E1",
      ["ruy.tar.gz"])
def _(c):
    tp = c.tp_copy()
    (tp / "SHA256SUMS").unlink()
    p = tp / "ruy.tar.gz"
    replace_file(p, p.read_bytes()[: p.stat().st_size // 2])
    c.env["ASC_CACHE_DIR"] = str(c.dir / "cache")
    return _firmware(c, c.fx.export, "--third-party", tp)


@case("firmware", "--third-party copy without SHA256SUMS (archives intact)", "W", ["SHA256SUMS"])
def _(c):
    tp = c.tp_copy()
    (tp / "SHA256SUMS").unlink()
    r = c.run_copy()
    c.allow(r / "export" / "firmware")
    c.check = report_passed(r / "export" / "firmware" / "firmware_report.json", host_clips=4)
    return _firmware(c, r / "export", "--third-party", tp)


@case("firmware", "$ASC_THIRD_PARTY is an empty folder", "E1", ["ASC_THIRD_PARTY"])
def _(c):
    (c.dir / "empty").mkdir()
    c.env["ASC_THIRD_PARTY"] = str(c.dir / "empty")
    return _firmware(c, c.fx.export)


@case("firmware", "$ASC_CACHE_DIR is a user file", "E1", ["notes.txt", "ASC_CACHE_DIR"])
def _(c):
    c.env["ASC_CACHE_DIR"] = str(c.user_file("notes.txt"))
    r = c.run_copy()
    return _firmware(c, r / "export")


@case("firmware", "the run retrained after export (model.keras replaced)", "E1", ["model.keras"])
def _(c):
    r = c.run_copy()
    replace_file(r / "model.keras", (c.fx.run2 / "model.keras").read_bytes())
    return _firmware(c, r / "export")


@case("firmware", "re-run where EXPORT/firmware/ holds a user's NOTES.md", "H|W|E1", ["NOTES.md"])
def _(c):
    r = c.run_copy()
    notes = c.user_file("run/export/firmware/NOTES.md", "scope traces of my board\n")
    c.allow(r / "export" / "firmware")
    c.keep(notes)
    c.check = report_passed(r / "export" / "firmware" / "firmware_report.json", host_clips=4)
    return _firmware(c, r / "export")


@case("firmware", "--work is a user file", "E1", ["notes.txt"])
def _(c):
    r = c.run_copy()
    return _firmware(c, r / "export", work=c.user_file("notes.txt"))


@case("firmware", "the export folder copied away from its run", "W", ["staleness", "export"])
def _(c):
    e = Path(shutil.copytree(c.fx.export, c.dir / "elsewhere" / "export"))
    c.allow(e / "firmware")
    c.check = report_passed(e / "firmware" / "firmware_report.json", host_clips=4)
    return _firmware(c, e)


@case("firmware", "the run renamed to a unicode name with a space and a comma", "H")
def _(c):
    r = c.run_copy("run ü, x")
    c.allow(r / "export" / "firmware")
    c.check = report_passed(r / "export" / "firmware" / "firmware_report.json", host_clips=4)
    return _firmware(c, r / "export")
