"""Running one case (in its own folder, as a subprocess with a bounded time, every protected tree
hashed before and after) and the Markdown report of all of them."""
from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from .files import Snapshotter
from .fixtures import Fixtures, git_head
from .judge import Outcome, clean_lines, judge
from .registry import Ctx, SetupError, Spec
from .settings import GOOD, PIPE_GRACE, REPO, SHARED_THIRD_PARTY, VERDICTS, asc_command


def _preexec(rlimit_as: int | None, nobody: bool):
    def fn():
        os.setsid()
        if rlimit_as:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (rlimit_as, rlimit_as))
        if nobody:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
    return fn



def _command_and_env(c: Ctx) -> tuple[list[str], dict[str, str]]:
    """The asc command line and environment of the case (as "nobody" when the case asks)."""
    if not c.as_nobody:
        return asc_command(), c.env
    home = c.dir / ".nobody-home"  # a scratch HOME the unprivileged user can write
    home.mkdir()
    os.chmod(home, 0o777)
    env = dict(c.env, HOME=str(home), MPLCONFIGDIR=str(home), NUMBA_CACHE_DIR=str(home))
    # the venv's interpreter lives under /root, which "nobody" cannot enter
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    system_python = Path(f"/usr/bin/python{version}")
    if not system_python.is_file():
        raise FileNotFoundError(f"no {system_python} to run as nobody")
    site = Path(sys.executable).parent.parent / "lib" / f"python{version}" / "site-packages"
    env["PYTHONPATH"] = f"{site}{os.pathsep}{REPO}"
    return [str(system_python), "-c", "import sys; from asc_cli.main import main; sys.exit(main())"], env


def _kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def run_bounded(proc: subprocess.Popen, *, timeout: float,
                interrupt: tuple[int, object, float] | None = None) -> tuple[str, str, bool]:
    """Wait for ``proc`` (its own process group) at most ``timeout`` seconds in all, sending the
    case's interrupt signal on its moment; on expiry SIGKILL its group and read what it printed for
    at most PIPE_GRACE more seconds (a process that left the group may hold the pipes open).
    Returns (stdout, stderr, timed out)."""
    deadline = time.time() + timeout
    try:
        if interrupt is not None:
            sig, when, delay = interrupt
            while proc.poll() is None and not when() and time.time() < deadline:
                time.sleep(0.05)
            time.sleep(delay)
            if proc.poll() is None:
                _kill_group(proc, sig)
        stdout, stderr = proc.communicate(timeout=max(1.0, deadline - time.time()))
        return stdout, stderr, False
    except subprocess.TimeoutExpired:
        _kill_group(proc)
    try:
        stdout, stderr = proc.communicate(timeout=PIPE_GRACE)
    except subprocess.TimeoutExpired:
        for f in (proc.stdout, proc.stderr):
            f.close()
        proc.wait(timeout=PIPE_GRACE)
        stdout, stderr = "", "(its output was not read: a process outside its group kept the pipes open)"
    return stdout, stderr, True


def run_one(n: int, spec: Spec, fx: Fixtures, cases_root: Path, env: dict, snap: Snapshotter, log) -> Outcome:
    d = cases_root / f"{n:03d}"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    c = Ctx(d, fx, env)
    t0 = time.time()
    try:
        argv = [str(a) for a in spec.fn(c)]
        command, run_env = _command_and_env(c)
    except Exception as e:  # noqa: BLE001  the script could not prepare the case (never the toolkit's fault)
        why = str(e) if isinstance(e, SetupError) else f"{type(e).__name__}: {e}"
        return Outcome(n, spec, [], {}, None, 0.0, "SETUP-FAILED", why, "", "", "", str(d))
    env_extra = {k: v for k, v in c.env.items() if env.get(k) != v}
    roots = [fx.root, d, SHARED_THIRD_PARTY, *c.extra_roots]
    before = snap(roots)
    proc = subprocess.Popen(command + argv, cwd=d, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=_preexec(c.rlimit_as, c.as_nobody))
    stdout, stderr, timed_out = run_bounded(proc, timeout=spec.timeout, interrupt=c.interrupt)
    p = subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)
    _kill_group(proc)  # leftovers of our own process group, if any
    seconds = time.time() - t0
    after = snap(roots)
    allowed = [str(a) for a in c.allowed]
    kept = {str(k) for k in c.kept}

    def is_allowed(path: str) -> bool:
        if path in kept:
            return False
        return any(path == a or path.startswith(a.rstrip("/") + "/") for a in allowed)

    lost = [k[len(str(cases_root)) + 1:] if k.startswith(str(cases_root)) else k
            for k, v in before.items() if after.get(k) != v and not is_allowed(k)]
    junk = [k for k in after if k not in before and (k.startswith(str(fx.root)) or k.startswith(str(SHARED_THIRD_PARTY)))
            and not is_allowed(k)]
    try:
        verdict, why, line = judge(spec, c, p, timed_out, lost, [os.path.relpath(j, fx.root) for j in junk])
    except Exception as e:  # noqa: BLE001  a check of the script itself failed
        verdict, why, line = "SETUP-FAILED", f"the script's check failed: {type(e).__name__}: {e}", ""
    return Outcome(n, spec, argv, env_extra, p.returncode, seconds, verdict, why, line, stdout, stderr, str(d))


def shorten(text: str, fx: Fixtures, cases_root: Path, case_dir: str) -> str:
    return (text.replace(case_dir, "$C").replace(str(fx.root), "$F").replace(str(cases_root), "$CASES")
            .replace(str(REPO), "$REPO"))


def md_cell(text: str, limit: int = 150) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def report(outcomes: list[Outcome], fx: Fixtures, cases_root: Path, seconds: float) -> str:
    counts = {v: 0 for v in VERDICTS}
    for o in outcomes:
        counts[o.verdict] = counts.get(o.verdict, 0) + 1
    lines = [f"# Hostile inputs: {len(outcomes)} cases over {len({o.spec.cmd for o in outcomes})} subcommands "
             f"({time.strftime('%Y-%m-%d')}, {seconds / 60:.0f} min, git {git_head()[:10]})", "",
             "`$F` = the fixtures folder (tiny dataset `data`, feature cache `work`, 2-epoch quarter-width run `run` "
             "with `run/export`, `run2`, archive copy `third_party`); `$C` = the case's own folder (its working "
             "directory). Verdicts and how each case is judged: see the docstring of "
             "`benchmarks/hostile_inputs.py`.", "", "## Summary", "", "| verdict | cases |", "|---|---|"]
    lines += [f"| {v} | {n} |" for v, n in counts.items() if n or v in VERDICTS]
    lines += ["", "## Cases", "", "| # | case | command | exit | verdict | error / warning / first stderr line | why |",
              "|---|---|---|---|---|---|---|"]
    for o in outcomes:
        env = " ".join(f"{k}={shlex.quote(shorten(v, fx, cases_root, o.case_dir))}" for k, v in o.env_extra.items())
        cmd = shorten(" ".join(["asc", *map(shlex.quote, o.argv)]), fx, cases_root, o.case_dir)
        cmd = f"{env} {cmd}".strip()
        lines.append(f"| {o.n} | {o.spec.cmd}: {md_cell(o.spec.title, 90)} | `{md_cell(cmd, 200)}` | "
                     f"{o.returncode if o.returncode is not None else '-'} | **{o.verdict}** | "
                     f"{md_cell(shorten(o.line, fx, cases_root, o.case_dir))} | {md_cell(shorten(o.why, fx, cases_root, o.case_dir), 160)} |")
    bad = [o for o in outcomes if o.verdict not in GOOD]
    if bad:
        lines += ["", "## Cases that are not OK-ERROR, OK-HANDLED or WARNED", ""]
        for o in bad:
            env = " ".join(f"{k}={shlex.quote(v)}" for k, v in o.env_extra.items())
            tail = "\n".join(clean_lines(o.stderr)[-12:])
            lines += [f"### {o.n}. {o.spec.cmd}: {o.spec.title}: {o.verdict}", "",
                      f"- command (in `{o.case_dir}`): `{(env + ' ') if env else ''}asc {' '.join(map(shlex.quote, o.argv))}`",
                      f"- exit status {o.returncode}; {o.why}", "", "```", tail or "(no stderr)", "```", ""]
    return "\n".join(lines) + "\n"

