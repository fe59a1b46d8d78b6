"""The command line of the hostile-input script (benchmarks/hostile_inputs.py)."""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from .catalog import all_cases, select
from .files import Snapshotter
from .fixtures import FixtureError, Fixtures, base_env, build_fixtures, code_fingerprint, restore_fixtures
from .runner import report, run_one
from .settings import FAILING, GOOD, SHARED_THIRD_PARTY, asc_command


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Hostile inputs over every ``asc`` subcommand: a table of what each one "
                                             "does with them.")
    ap.add_argument("--work", default="/tmp/hostile-inputs", help="folder for fixtures, cases and the report")
    ap.add_argument("--only", default=None, help="regular expression on 'NNN command: title' of the cases to run")
    ap.add_argument("--stage", default=None, metavar="NAME[,NAME...]",
                    help="run only the cases of these commands (e.g. bundle,profile) or groups (a case module's "
                         "name: dataset, features, train, export, validate, firmware, demo, profile, issue28)")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--rebuild-fixtures", action="store_true")
    ap.add_argument("--reuse-fixtures", action="store_true",
                    help="reuse the fixtures even if they were built at another git commit (by default they are rebuilt)")
    ap.add_argument("--keep-all", action="store_true", help="keep the folders of OK cases too")
    return ap.parse_args(argv)


def write_reports(work: Path, outcomes: list, fx: Fixtures, seconds: float) -> str:
    text = report(outcomes, fx, work / "cases", seconds)
    (work / "hostile_report.md").write_text(text)
    (work / "hostile_report.json").write_text(json.dumps([{
        "n": o.n, "command": o.spec.cmd, "case": o.spec.title, "argv": o.argv, "env": o.env_extra,
        "exit": o.returncode, "verdict": o.verdict, "why": o.why, "line": o.line, "seconds": round(o.seconds, 1),
        "stderr": o.stderr[-20000:], "stdout": o.stdout[-5000:], "folder": o.case_dir} for o in outcomes], indent=1))
    return text


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    work = Path(a.work).resolve()
    fx = Fixtures(work / "fixtures")
    env = base_env(fx)
    cases = all_cases(asc_command(), env)
    numbered = select(list(enumerate(cases, 1)), only=a.only, stages=a.stage)
    if a.list:
        for n, s in numbered:
            print(f"{n:3d} {s.cmd:<13} {'|'.join(sorted(s.expect)):<8} {s.title}")
        print(f"{len(numbered)} cases over {len({s.cmd for _, s in numbered})} subcommands")
        return 0

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    t0 = time.time()
    work.mkdir(parents=True, exist_ok=True)
    try:
        build_fixtures(fx, rebuild=a.rebuild_fixtures, reuse=a.reuse_fixtures, log=log)
    except FixtureError as e:
        log(str(e))
        return 3
    shared_before = Snapshotter()([SHARED_THIRD_PARTY])
    snap = Snapshotter()
    outcomes = []
    for n, spec in numbered:
        log(f"[{n:3d}/{len(cases)}] {spec.cmd}: {spec.title}")
        o = run_one(n, spec, fx, work / "cases", env, snap, log)
        if code_fingerprint() != fx.manifest.get("code"):
            o.why += " (NOTE: the toolkit's code changed after the fixtures were built; rerun to be sure)"
        log(f"        -> {o.verdict} (exit {o.returncode}, {o.seconds:.0f} s): {o.why[:150]}")
        outcomes.append(o)
        if restore_fixtures(fx, log=log, only_if_changed=True, snap=snap):
            o.why += " (the fixtures were restored afterwards)"
        if o.verdict in GOOD and not a.keep_all and spec.cmd != "demo":
            shutil.rmtree(o.case_dir, ignore_errors=True)
    if Snapshotter()([SHARED_THIRD_PARTY]) != shared_before:
        log(f"WARNING: {SHARED_THIRD_PARTY} changed during the run")
    print(write_reports(work, outcomes, fx, time.time() - t0))
    print(f"report: {work / 'hostile_report.md'} (stderr of every case in hostile_report.json)")
    failing = [o for o in outcomes if o.verdict in FAILING or o.verdict == "SETUP-FAILED"]
    return 1 if failing else 0
