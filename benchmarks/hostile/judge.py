"""The classifier: one verdict per outcome (see the docstring of benchmarks/hostile_inputs.py)."""
from __future__ import annotations

import dataclasses
import os
import re
import subprocess

from .registry import Ctx, Spec

NOISE = re.compile(r"^(WARNING: All log messages before absl|[IWEF]\d{4} \d\d:\d\d:\d\d|.*oneDNN custom operations"
                   r"|.*cudart_stub|.*Could not find cuda|.*TF-TRT Warning|.*computation placer already registered"
                   r"|.*Unable to register cu|fully_quantize: |INFO: |\s*$)")
WARN = re.compile(r"warning|no effect|skipped|ignored|no firmware arena probes|no arena probe", re.I)
FIX = re.compile(r"\b(use|choose|run (?:`|the|it|again|asc)|re-run|rerun|give|point|pass|fix|remove|delete|restore|install|replace|check|"
                 r"lower|raise|move|keep|continue|download|re-download|extract|re-extract|fetch|copy|rename|empty|add|"
                 r"set|name each|takes|accepts|one of|choose from|expected|must|needs?|at least|at most|try|free|"
                 r"regenerate|resume|start|convert|fill|generate|increase|shorten|see|registered|one or more of|required|"
                 r"unrecognized arguments)\b", re.I)


def clean_lines(text: str) -> list[str]:
    out = []
    for chunk in text.replace("\r", "\n").splitlines():
        if NOISE.match(chunk) or "it/s]" in chunk or "%|" in chunk:
            continue
        out.append(chunk.rstrip())
    return out


@dataclasses.dataclass
class Outcome:
    n: int
    spec: Spec
    argv: list[str]
    env_extra: dict[str, str]
    returncode: int | None
    seconds: float
    verdict: str
    why: str
    line: str
    stdout: str
    stderr: str
    case_dir: str


def judge(spec: Spec, c: Ctx, p: subprocess.CompletedProcess | None, timed_out: bool, lost: list[str],
          created_junk: list[str]) -> tuple[str, str, str]:
    spec = dataclasses.replace(spec, names=tuple(n.replace("{F}", str(c.fx.root)).replace("{C}", str(c.dir))
                                                 for n in spec.names))
    out, err = (p.stdout, p.stderr) if p else ("", "")
    lines_err, lines_out = clean_lines(err), clean_lines(out)
    err_idx = next((i for i, line in enumerate(lines_err) if re.search(r"\berror:|^error\b", line, re.I)), None)
    message = "\n".join(lines_err[err_idx:]) if err_idx is not None else ""
    warnings = [line for line in lines_err + lines_out if WARN.search(line)]
    named_warnings = [w for w in warnings if not spec.names or any(n.lower() in w.lower() for n in spec.names)]
    show = (lines_err[err_idx] if err_idx is not None else named_warnings[0] if named_warnings
            else lines_err[0] if lines_err else "")
    traceback = "Traceback (most recent call last)" in err or "Traceback (most recent call last)" in out
    if traceback:
        last = [line for line in lines_err if line and not line.startswith(" ")]
        tb_line = next((line for line in reversed(last) if re.match(r"^[\w.]+(Error|Exception|Interrupt)\b", line)), "")
        show = tb_line or show
    rc = p.returncode if p else None
    junk = f"; left behind {created_junk[:3]}" if created_junk else ""

    if lost:
        return "LOST", f"changed or deleted: {', '.join(lost[:4])}{' ...' if len(lost) > 4 else ''}", show
    if timed_out:
        return "HANG", f"no exit within {spec.timeout} s", show
    if traceback:
        return "TRACEBACK", f"exit {rc}, a Python traceback", show
    if rc is not None and rc < 0:
        return "CRASH", f"killed by signal {-rc}", show

    if rc != 0:
        if f"E{rc}" not in spec.expect:
            if rc == 130 or not any(e.startswith("E") for e in spec.expect):
                return "BAD-MESSAGE", f"refused (exit {rc}) an input that should be accepted", show
            if rc not in (1, 2):
                return "BAD-MESSAGE", f"exit status {rc}, documented {sorted(spec.expect)}", show
        problems = []
        if f"E{rc}" not in spec.expect:
            problems.append(f"exit status {rc}, documented {'/'.join(e[1:] for e in sorted(spec.expect) if e[0] == 'E')}")
        if not message and rc != 130:
            problems.append("no error line on stderr")
        text = message if rc != 130 else "\n".join(lines_err)
        if spec.names and not any(n.lower() in text.lower() for n in spec.names):
            problems.append(f"names none of {list(spec.names)}")
        if rc != 130 and not FIX.search(text.split("error:", 1)[-1]):
            problems.append("gives no fix")
        wrong = [f for f in spec.forbid if f.lower() in text.lower()]
        if wrong:
            problems.append(f"wrong cause or fix: says {wrong[0]!r}")
        if not problems and c.recheck is not None:
            r = c.recheck(p)
            if r:
                problems.append(r)
        if problems:
            return "BAD-MESSAGE", "; ".join(problems) + junk, show
        if rc == 130:
            bad = c.check(p) if c.check else None
            return ("OK-HANDLED", "exit 130 and the documented message; " + getattr(c.check, "what", "") + junk, show) if not bad else (
                "SILENT-WRONG", bad, show)
        named = next((n for n in spec.names if n.lower() in text.lower()), None)
        named = os.path.relpath(named, c.dir) if named and named.startswith(str(c.dir)) else named
        named = os.path.relpath(named, c.fx.root) if named and named.startswith(str(c.fx.root)) else named
        return "OK-ERROR", f"exit {rc}; names {named!r}; gives a fix" + junk if named else (
            f"exit {rc}; gives a fix" + junk), show

    # exit status 0: a case's check, when it has one, says whether the result is right
    bad = c.check(p) if c.check else None
    what = getattr(c.check, "what", "the case's check")
    if bad:
        return "SILENT-WRONG", f"accepted, but {bad}" + (" (a warning was printed)" if named_warnings else ""), show
    if named_warnings and c.warning_check is not None:
        problem = c.warning_check(p)
        if problem:
            return "BAD-MESSAGE", f"accepted with a warning, but {problem}", named_warnings[0]
    if "W" in spec.expect and named_warnings:
        named = next((n for n in spec.names if n.lower() in named_warnings[0].lower()), "it")
        return "WARNED", f"accepted with a warning naming {named!r}", named_warnings[0]
    if "H" in spec.expect or c.check:
        checked = f"checked: {what}" if c.check else "accepted"
        return "OK-HANDLED", checked + (f" (warned: {named_warnings[0][:80]})" if named_warnings else ""), show
    if named_warnings:
        return "WARNED", "accepted with a warning (a refusal was expected)", named_warnings[0]
    if "W" in spec.expect:
        return "SILENT-WRONG", f"accepted without a warning naming {list(spec.names)}", show
    return "SILENT-WRONG", "accepted (exit 0, no warning) an input that must be refused", show

