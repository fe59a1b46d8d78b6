"""Cases of profile, registered from what ``asc profile --help`` offers (none when there is no
profile command)."""
from __future__ import annotations

import subprocess

from .checks import described, ok_if
from .files import edit_text, replace_file
from .registry import CaseList


def profile_cases(asc: list[str], env: dict) -> CaseList:
    CASES = CaseList("profile")
    case = CASES.case
    p = subprocess.run(asc + ["profile", "--help"], capture_output=True, text=True, env=env, timeout=120)
    if p.returncode != 0:
        return CASES
    usage = p.stdout
    extra = []
    for opt, which in (("--data", "data"), ("--work", "work")):
        if opt in usage:
            extra.append((opt, which))

    def common(c):
        out = []
        for opt, which in extra:
            out += [opt, getattr(c.fx, which)]
        return out

    @case("profile", "no arguments", "E2", ["usage", "profile"])
    def _(c):
        return ["profile"]

    @case("profile", "the export does not exist", "E1", ["nowhere"])
    def _(c):
        return ["profile", c.dir / "nowhere", *common(c)]

    @case("profile", "a user file instead of an export", "E1", ["notes.txt"])
    def _(c):
        return ["profile", c.user_file("notes.txt"), *common(c)]

    @case("profile", "an export with model_data.cc edited", "E1", ["model_data.cc"])
    def _(c):
        r = c.run_copy()
        edit_text(r / "export" / "model_data.cc", lambda t: t.replace("0x1c,", "0x1d,", 1))
        return ["profile", r / "export", *common(c)]

    if "--targets" in usage:
        @case("profile", "--targets cortex-m4,cortex-m4", "E2", ["--targets"])
        def _(c):
            return ["profile", c.fx.export, *common(c), "--targets", "cortex-m4,cortex-m4"]

        @case("profile", "--targets host (not a Cortex-M image)", "E2", ["--targets", "host"])
        def _(c):
            return ["profile", c.fx.export, *common(c), "--targets", "host"]

    if "--mcu" in usage:
        @case("profile", "--mcu stm32f9 (unknown)", "E2", ["--mcu", "stm32f9"])
        def _(c):
            return ["profile", c.fx.export, *common(c), "--mcu", "stm32f9"]

    if "--inferences" in usage:
        @case("profile", "--inferences 0", "E2", ["--inferences"])
        def _(c):
            return ["profile", c.fx.export, *common(c), "--inferences", "0"]

    if "--out" in usage:
        @case("profile", "--out is a non-empty user folder", "E1", ["mine"])
        def _(c):
            return ["profile", c.fx.export, *common(c), "--out", c.user_dir("mine")]

        @case("profile", "--out is the run itself", "E1", ["{F}/run"])
        def _(c):
            return ["profile", c.fx.export, *common(c), "--out", c.fx.run]

        @case("profile", "--out is the export itself", "E1", ["{F}/run/export"])
        def _(c):
            return ["profile", c.fx.export, *common(c), "--out", c.fx.export]

    @case("profile", "the run retrained after export (model.keras replaced)", "E1|W", ["model.keras", "stale"])
    def _(c):
        r = c.run_copy()
        replace_file(r / "model.keras", (c.fx.run2 / "model.keras").read_bytes())
        c.allow(r / "export" / "profile")
        return ["profile", r / "export", *common(c)]

    @case("profile", "a whole profile of a copied export with a user's NOTES.md in it", "H|W", timeout=900)
    def _(c):
        r = c.run_copy()
        notes = c.user_file("run/export/NOTES.md")
        c.allow(r / "export" / "profile")
        c.keep(notes)
        c.check = described("EXPORT/profile/ written", lambda p: ok_if((r / "export" / "profile").is_dir() and any((r / "export" / "profile").iterdir()),
                                  "no profile folder written"))
        return ["profile", r / "export", *common(c)]

    return CASES
