"""parallel_map: results for every call, in-process and in workers; workers die with their parent."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from keras_asc.parallel import parallel_map

REPO = Path(__file__).resolve().parents[2]


def test_every_call_once_in_process_and_in_workers():
    calls = [(n,) for n in range(-5, 6)]
    for workers in (1, 2):
        got = dict(parallel_map(abs, calls, workers=workers, desc="t", unit="x"))
        assert got == {k: abs(n) for k, (n,) in enumerate(calls)}


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def test_workers_die_when_their_parent_is_killed():
    script = ("import time\nfrom keras_asc.parallel import parallel_map\n"
              "for _ in parallel_map(time.sleep, [(120,), (120,)], workers=2, desc='t', unit='s'):\n    pass\n")
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(_children(parent.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        workers = _children(parent.pid)
        assert len(workers) >= 2, "the workers did not start"
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 30
    alive = workers
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [w for w in alive if Path(f"/proc/{w}").exists() and "Z" not in _state(w)]
    assert alive == [], f"orphaned workers {alive}"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"
