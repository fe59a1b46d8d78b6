"""The hostile-input script's classifier, case selection and bounded waits (benchmarks/hostile/):
each verdict from a hand-made outcome, no subprocess of asc."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import types
from pathlib import Path

from benchmarks.hostile.catalog import select
from benchmarks.hostile.files import Snapshotter
from benchmarks.hostile.judge import judge
from benchmarks.hostile.registry import CaseList
from benchmarks.hostile.runner import run_bounded


def _spec(expect: str, names=("--size",), forbid=()):
    cases = CaseList("dataset")
    cases.case("make-dataset", "a case", expect, names, forbid=forbid)(lambda c: [])
    return cases[0]


def _ctx(tmp_path: Path, **hooks):
    return types.SimpleNamespace(fx=types.SimpleNamespace(root=tmp_path / "fixtures"), dir=tmp_path / "case",
                                 check=None, recheck=None, warning_check=None, **hooks)


def _verdict(tmp_path, expect, rc, *, stdout="", stderr="", timed_out=False, lost=(), **kw):
    hooks = {k: kw.pop(k) for k in ("check", "recheck", "warning_check") if k in kw}
    ctx = _ctx(tmp_path)
    vars(ctx).update(hooks)
    p = subprocess.CompletedProcess([], rc, stdout, stderr)
    return judge(_spec(expect, **kw), ctx, p, timed_out, list(lost), [])[0]


FIXED = "asc make-dataset: error: --size 0: give a positive number of segments, or tiny or demo\n"


def test_a_refusal_naming_the_option_with_a_fix_is_ok_error(tmp_path):
    assert _verdict(tmp_path, "E2", 2, stderr=FIXED) == "OK-ERROR"


def test_a_refusal_with_exit_1_where_2_is_documented_is_bad_message(tmp_path):
    assert _verdict(tmp_path, "E2", 1, stderr=FIXED) == "BAD-MESSAGE"


def test_a_refusal_stating_a_forbidden_cause_is_bad_message(tmp_path):
    assert _verdict(tmp_path, "E2", 2, stderr=FIXED, forbid=("positive",)) == "BAD-MESSAGE"


def test_a_traceback_is_traceback_whatever_the_exit_status(tmp_path):
    err = "Traceback (most recent call last):\n  File \"x.py\", line 1\nIndexError: list index out of range\n"
    assert _verdict(tmp_path, "E1", 1, stderr=err + FIXED) == "TRACEBACK"


def test_a_timeout_is_hang(tmp_path):
    assert _verdict(tmp_path, "E1", -9, timed_out=True) == "HANG"


def test_a_changed_protected_file_is_lost_before_anything_else(tmp_path):
    assert _verdict(tmp_path, "E2", 2, stderr=FIXED, lost=["case/bundle/board/board.ld"]) == "LOST"


def test_a_refused_valid_input_is_bad_message(tmp_path):
    assert _verdict(tmp_path, "H", 1, stderr=FIXED) == "BAD-MESSAGE"


def test_an_accepted_input_whose_check_fails_is_silent_wrong(tmp_path):
    assert _verdict(tmp_path, "H", 0, check=lambda p: "the report records another model") == "SILENT-WRONG"


def test_a_warning_on_stdout_fails_the_warning_check(tmp_path):
    out = "warning: export: the staleness check could not run\n"
    bad = _verdict(tmp_path, "W", 0, stdout=out, names=("staleness",),
                   warning_check=lambda p: "on stdout" if "staleness" in p.stdout else None)
    assert bad == "BAD-MESSAGE"


def test_the_same_warning_on_stderr_is_warned(tmp_path):
    err = "warning: export: the staleness check could not run\n"
    ok = _verdict(tmp_path, "W", 0, stderr=err, names=("staleness",),
                  warning_check=lambda p: "on stdout" if "staleness" in p.stdout else None)
    assert ok == "WARNED"


def test_stage_selects_by_group_or_command():
    a, b = CaseList("train"), CaseList("issue28")
    a.case("train", "one", "E2")(lambda c: [])
    b.case("bundle", "two", "E1")(lambda c: [])
    b.case("train", "three", "E2")(lambda c: [])
    numbered = list(enumerate([*a, *b], 1))
    assert [n for n, _ in select(numbered, only=None, stages="issue28")] == [2, 3]
    assert [n for n, _ in select(numbered, only=None, stages="bundle,train")] == [1, 2, 3]
    assert [n for n, _ in select(numbered, only="three", stages="issue28")] == [3]


def test_a_command_past_its_timeout_is_killed_and_reported_timed_out():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    _out, _err, timed_out = run_bounded(proc, timeout=1)
    assert timed_out and proc.returncode is not None


def test_a_snapshot_never_opens_a_fifo(tmp_path):
    os.mkfifo(tmp_path / "fifo.tflite")
    result = {}
    t = threading.Thread(target=lambda: result.update(Snapshotter()([tmp_path])), daemon=True)
    t.start()
    t.join(timeout=30)
    assert result[str(tmp_path / "fifo.tflite")][0] == "special"
