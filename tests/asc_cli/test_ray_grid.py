"""``asc grid --engine ray`` on a real two-node Ray cluster, on 127.0.0.1 only.

A Ray head and a worker node (one CPU each, their own temp dirs and ports) run as two sessions
of ``ray start --block`` (a node's Ray workers have process groups of their own but stay in its
session); the grid driver is a third (``asc grid --engine ray --address``). The test kills the
driver while a cell trains and runs the same command again; under the second driver it freezes a
cell on the worker node that has trained an epoch and has one more to train, kills every process
of the worker node (a lost node) and starts a replacement node. Every cell must come out exactly
once, the lost one retried by Tune and resumed from its last finished epoch, with the table of
the local engine's run of the same grid (run meanwhile).

Nothing outlives the tests: each node, and the driver, is its own session, whose processes are
killed by id at the end (pass or fail, by a session fixture's finalizer and ``atexit``; SIGTERM is
turned into an exit that runs them; a watchdog process does it should pytest itself be killed),
together with any process whose command line names the cluster's temp dir;
:meth:`LoopbackCluster.stop` waits for them to be gone and reports any that are not. ``ray stop --force`` is not used: it kills every Ray process of
the machine, other people's included.
"""
from __future__ import annotations

import atexit
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from asc_cli.main import main
from tests.conftest import TINY_CLIP_SECONDS

#: ``ray start``, except that a loopback --node-ip-address/--address stays loopback: Ray replaces
#: 127.0.0.1 by the host's routed address (services.resolve_ip_for_localhost), and these tests send
#: nothing to any address but 127.0.0.1.
RAY_START = ("import sys\n"
             "import ray._private.services as services\n"
             "services.resolve_ip_for_localhost = lambda host: host\n"
             "from ray.scripts.scripts import main\n"
             "sys.argv[0] = 'ray'\n"
             "main()\n")
#: For the driver (``ray.init(address=...)``): keep a loopback address as it is (Ray's switch for
#: single-machine clusters; it only stops ``ray start`` from joining a cluster, which drivers never do).
DRIVER_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0", "TF_CPP_MIN_LOG_LEVEL": "2"}
ASC_BIN = Path(sys.executable).with_name("asc")
EPOCHS = 3
#: The tiny 2 x 2 grid (frames/s x loss), as CLI options (shared with benchmarks/bench_ray_grid.py).
GRID_ARGS = ["--frames", "28,43", "--mels", "64", "--losses", "ce,focal", "--model-arg", "width=0.25",
             "--epochs", str(EPOCHS), "--batch-size", "16", "--calibration-size", "40",
             "--clip-seconds", str(TINY_CLIP_SECONDS)]
#: Columns that say where and how often a cell ran (differ between engines by design).
PLACEMENT = ["hostname", "node_ip", "attempts"]
#: Columns that do not depend on the trained weights.
STRUCTURE = ["name", "model", "frames_per_second", "n_mels", "loss", "window_frames", "params", "int8_bytes",
             "within_budget", "arena_bytes", "macs_per_inference", "macs_per_clip", "ram_estimate_bytes"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, check, timeout: float, interval: float = 0.2):
    """Poll ``check()`` until it returns something truthy; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def processes_of_session(sid: int) -> list:
    """The live processes of a session (``ray start`` in a new session: the node's raylet, GCS,
    agents, and its Ray workers, which get process groups of their own but stay in the session)."""
    import psutil

    out = []
    for p in psutil.process_iter(["pid", "status"]):
        try:
            if p.info["status"] != psutil.STATUS_ZOMBIE and os.getsid(p.pid) == sid:
                out.append(p)
        except (ProcessLookupError, psutil.Error):
            pass
    return out


def remote_addresses(sids: list[int]) -> set[str]:
    """The remote IP addresses of every TCP/UDP connection of these sessions' processes."""
    import psutil

    found = set()
    for sid in sids:
        for p in processes_of_session(sid):
            try:
                found |= {c.raddr.ip for c in p.net_connections(kind="inet") if c.raddr}
            except psutil.Error:
                pass
    return found


def kill_session(sid: int) -> int:
    """SIGKILL every process of the session, until none is left; returns how many were killed."""
    import psutil

    killed = set()
    for _ in range(20):  # a dying raylet may still be starting a worker: sweep again
        found = processes_of_session(sid)
        if not found:
            break
        for p in found:
            try:
                p.kill()
                killed.add(p.pid)
            except psutil.Error:
                pass
        time.sleep(0.1)
    return len(killed)


class LoopbackCluster:
    """Ray nodes on 127.0.0.1, each ``ray start --block`` in its own session and temp dir
    (under one short folder: Ray's socket paths must stay under 108 bytes), every port chosen
    free, no dashboard, no usage stats, a small object store."""

    def __init__(self, root: Path | None = None, *, cpus_per_node: int = 1):
        self.root = Path(root or tempfile.mkdtemp(prefix="ascray-", dir="/tmp"))
        self.cpus = cpus_per_node
        self.nodes: dict[str, subprocess.Popen] = {}
        self.port: int | None = None  # the head's GCS
        self.client_port: int | None = None  # the head's Ray Client server (ray://)
        self.drivers: list[subprocess.Popen] = []  # `asc grid` processes started by the tests
        self.watchdog: subprocess.Popen | None = None
        # Ray's token authentication with a token of this cluster's own (a 0600 file in its temp
        # dir): other users of the machine cannot join, and no ~/.ray/auth_token is read or written
        token = self.root / "auth_token"
        token.touch(mode=0o600)
        token.write_text(secrets.token_hex(32))
        #: what every process of the cluster, drivers included, needs in its environment
        self.env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token), "RAY_USAGE_STATS_ENABLED": "0"}

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _start_node(self, name: str, args: list[str], timeout: float = 120) -> None:
        log = self.root / f"{name}.log"
        cmd = [sys.executable, "-c", RAY_START, "start", "--block", "--node-ip-address", "127.0.0.1", "--num-cpus", str(self.cpus),
               "--num-gpus", "0", "--temp-dir", str(self.root / name), "--disable-usage-stats",
               "--object-store-memory", str(80 * 1024 * 1024),
               "--dashboard-agent-listen-port", str(free_port()), "--dashboard-agent-grpc-port", str(free_port()),
               "--runtime-env-agent-port", str(free_port()), "--metrics-export-port", str(free_port()),
               "--node-manager-port", str(free_port()), "--object-manager-port", str(free_port()), *args]
        # 1: a worker node joins a cluster. 0 on the head: the processes it spawns without RAY_START's
        # patch (the Ray Client server of each ray:// driver) then keep 127.0.0.1 too
        head = "--head" in args
        # the head's client server waits 30 s by default for the server it starts for each ray://
        # driver (a Python that imports Ray); on CI's two busy cores that took longer (2026-12-07)
        env = {**os.environ, **self.env, "TF_CPP_MIN_LOG_LEVEL": "2",
               "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0" if head else "1",
               "RAY_CLIENT_SERVER_CHECK_CHANNEL_TIMEOUT_S": "240"}
        with open(log, "w") as f:
            self.nodes[name] = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                start_new_session=True, env=env)
        self.note_session(self.nodes[name].pid)

        def started():
            if self.nodes[name].poll() is not None:
                raise RuntimeError(f"ray start for {name} exited {self.nodes[name].returncode}:\n{log.read_text()[-3000:]}")
            return "Ray runtime started" in log.read_text()
        wait_for(f"Ray node {name} to start (log {log})", started, timeout, interval=0.5)

    def start(self, workers: int = 1) -> "LoopbackCluster":
        self.port, self.client_port = free_port(), free_port()
        self._start_watchdog()
        self._start_node("head", ["--head", "--port", str(self.port), "--include-dashboard", "false",
                                  "--dashboard-port", str(free_port()), "--ray-client-server-port",
                                  str(self.client_port)])
        for i in range(1, workers + 1):
            self.add_worker(f"worker{i}")
        return self

    def note_session(self, sid: int) -> None:
        """Tell the watchdog about a session to kill should this process die first."""
        with open(self.root / "sessions.txt", "a") as f:
            f.write(f"{sid}\n")

    def _start_watchdog(self) -> None:
        """A separate process (its own session) that kills every noted session, and every
        process naming the temp dir, as soon as this test process is gone (even killed with
        SIGKILL, when no finalizer runs); it exits by itself when the cluster was stopped."""
        code = (
            "import os, signal, sys, time\n"
            "import psutil\n"
            "parent, root = int(sys.argv[1]), sys.argv[2]\n"
            "while psutil.pid_exists(parent) and os.path.isdir(root):\n"
            "    time.sleep(1)\n"
            "if os.path.isdir(root):\n"
            "    sessions = {int(x) for x in open(os.path.join(root, 'sessions.txt')).read().split()}\n"
            "    for _ in range(20):\n"
            "        for p in psutil.process_iter(['cmdline']):\n"
            "            try:\n"
            "                if p.pid != os.getpid() and (os.getsid(p.pid) in sessions\n"
            "                                             or root in ' '.join(p.info['cmdline'] or ())):\n"
            "                    p.kill()\n"
            "            except (OSError, psutil.Error): pass\n"
            "        time.sleep(0.2)\n")
        (self.root / "sessions.txt").touch()
        self.watchdog = subprocess.Popen([sys.executable, "-c", code, str(os.getpid()), str(self.root)],
                                         stdin=subprocess.DEVNULL, start_new_session=True)

    def add_worker(self, name: str) -> None:
        self._start_node(name, ["--address", self.address])

    def node_of_pid(self, pid: int) -> str | None:
        """The node whose session the process belongs to (start_new_session: sid = the leader's pid)."""
        try:
            sid = os.getsid(pid)
        except ProcessLookupError:
            return None
        return next((n for n, p in self.nodes.items() if p.pid == sid), None)

    def kill_node(self, name: str, timeout: float = 60) -> int:
        """SIGKILL every process of the node (a lost machine); returns how many were killed."""
        sid = self.nodes[name].pid
        killed = kill_session(sid)
        self.nodes[name].wait(timeout=timeout)
        wait_for(f"node {name}'s processes to die", lambda: not processes_of_session(sid), timeout)
        return killed

    def stop(self, timeout: float = 60) -> list[str]:
        """Kill every node and driver session and any process naming the temp dir; return what is
        still alive afterwards (nothing, or a bug to report)."""
        import psutil

        sessions = [p.pid for p in self.nodes.values()] + [p.pid for p in self.drivers]
        for sid in sessions:
            kill_session(sid)

        def strays() -> list:
            found = []
            for p in psutil.process_iter(["pid", "cmdline", "status"]):
                try:
                    if p.pid == os.getpid() or p.info["status"] == psutil.STATUS_ZOMBIE:
                        continue  # a zombie is dead, only not yet reaped
                    if str(self.root) in " ".join(p.info["cmdline"] or ()) or os.getsid(p.pid) in sessions:
                        found.append(p)
                except (ProcessLookupError, psutil.Error):
                    pass
            return found
        for p in strays():
            try:
                p.kill()
            except psutil.Error:
                pass
        for p in [*self.nodes.values(), *self.drivers, *filter(None, [self.watchdog])]:
            try:
                p.wait(timeout=timeout)  # reaped: no zombie left behind either
            except subprocess.TimeoutExpired:
                pass
        try:
            wait_for("the cluster's processes to die", lambda: not strays(), timeout, interval=0.5)
        except TimeoutError:
            pass
        left = []
        for p in strays():
            try:
                left.append(f"{p.pid} {' '.join(p.cmdline())[:200]}")
            except psutil.Error:
                pass
        return left

    def cleanup(self) -> list[str]:
        if self.watchdog is not None:
            self.watchdog.kill()
        left = self.stop()
        if not left:
            shutil.rmtree(self.root, ignore_errors=True)
        return left


def start_driver(cluster: LoopbackCluster, data: Path, out: Path, log: Path, extra: list[str] = ()) -> subprocess.Popen:
    """``asc grid --engine ray --address`` in its own session (killed with the cluster)."""
    f = open(log, "a")
    p = subprocess.Popen([str(ASC_BIN), "grid", "--data", str(data), "--out", str(out), *GRID_ARGS,
                          "--engine", "ray", "--address", cluster.address, "--max-failures", "3", *extra],
                         stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                         env={**os.environ, **DRIVER_ENV, **cluster.env})
    f.close()
    cluster.drivers.append(p)
    cluster.note_session(p.pid)
    return p


def attempts(out: Path) -> dict[str, list[dict]]:
    found = {}
    for f in sorted((out / "grid_attempts").glob("*.json")):
        try:
            found[f.stem] = json.loads(f.read_text())["attempts"]
        except (ValueError, KeyError, OSError):
            pass  # being written
    return found


def epoch_of(run: Path) -> tuple[int, str]:
    try:
        state = json.loads((run / "state.json").read_text())
        status = json.loads((run / "config.json").read_text()).get("status", "")
    except (ValueError, OSError):
        return 0, ""
    return int(state.get("epoch", 0)), status


def freeze_when_training(cluster: LoopbackCluster, out: Path, nodes: set[str], *, skip=(), timeout: float
                         ) -> tuple[str, int, int]:
    """Wait for a cell running on one of ``nodes`` to have trained an epoch in its current attempt
    with an epoch still to train, and SIGSTOP its process (so that it is killed mid-training); returns
    (cell, pid, epoch)."""
    def find():
        for cell, tries in attempts(out).items():
            last = tries[-1]
            if cell in skip or cluster.node_of_pid(last["pid"]) not in nodes:
                continue
            epoch, status = epoch_of(out / cell)
            # an epoch trained by this attempt, and at least one still to train
            if last["resumed_from_epoch"] < epoch < EPOCHS and status == "training":
                os.kill(last["pid"], signal.SIGSTOP)
                epoch_now, status = epoch_of(out / cell)
                if status == "training":
                    return cell, last["pid"], epoch_now
                os.kill(last["pid"], signal.SIGCONT)  # finished meanwhile: look again
        return None
    return wait_for(f"a cell training on {'/'.join(sorted(nodes))} past its first epoch", find, timeout, interval=0.05)


def is_loopback(ip: str) -> bool:
    import ipaddress

    addr = ipaddress.ip_address(ip)
    return (getattr(addr, "ipv4_mapped", None) or addr).is_loopback


# ----------------------------------------------------------------------------- fast checks
def test_engine_ray_without_ray_names_the_fix(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "1")  # what a local Ray would set, kept out of os.environ
    assert main(["grid", "--data", str(tmp_path), "--out", str(tmp_path / "g"), "--engine", "ray"]) == 1
    err = capsys.readouterr().err
    assert "--engine ray needs Ray (ray[tune]==2.60.0)" in err and "pip install -e '.[ray]'" in err
    assert "--engine local" in err and "Traceback" not in err


def test_bad_address_and_local_only_options(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["grid", "--data", str(tmp_path), "--out", str(tmp_path / "g"), "--engine", "ray", "--address", "nohost"])
    assert exit_.value.code == 2 and "takes auto, HOST:PORT or ray://HOST:PORT" in capsys.readouterr().err
    from asc_cli.main import _ray_address

    assert [_ray_address(a) for a in ("auto", "10.0.0.1:6379", "ray://head:10001")] == [
        "auto", "10.0.0.1:6379", "ray://head:10001"]


def test_local_engine_never_imports_ray(tmp_path):
    code = ("import sys; import asc_cli.grid as g; g.run_grid = lambda *a, **k: None; "
            "from asc_cli.main import main; "
            f"rc = main(['grid', '--data', {str(tmp_path)!r}, '--out', {str(tmp_path / 'g')!r}, '--mels', '64', "
            "'--model-arg', 'width=0.25', '--address', 'auto', '--clip-seconds', '2']); "
            "assert rc == 0, rc; assert 'ray' not in sys.modules, 'ray imported'; print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-2000:]
    assert "--address auto has no effect with --engine local" in r.stderr


# ----------------------------------------------------------------------------- the two-node cluster
@pytest.fixture(scope="session")
def ray_cluster(request):
    pytest.importorskip("ray", reason="the ray extra is not installed (./dev.sh installs it)")
    cluster = LoopbackCluster()
    done = []
    # SIGTERM (a CI timeout, `kill`) would end pytest without finalizers: make it an exit that runs them
    old_term = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    def finish():
        if not done:
            done.append(True)
            signal.signal(signal.SIGTERM, old_term)
            left = cluster.cleanup()
            if left:
                print(f"\nray test cluster: processes still alive after the kill: {left}", file=sys.stderr)
    request.addfinalizer(finish)
    atexit.register(finish)
    return cluster.start(workers=1)


@pytest.fixture(scope="session")
def ray_grid(ray_cluster, tiny_dataset, tmp_path_factory):
    """The grid on the two nodes: the driver killed, the same command again, under it the worker
    node lost; meanwhile the local engine runs the same grid (it fills the CPU the cluster leaves
    idle while drivers start and a lost node is detected). Returns what happened."""
    cluster = ray_cluster
    out = tmp_path_factory.mktemp("raygrid") / "grid"
    log = out.parent / "driver.log"
    local_out = out.parent / "local"
    with open(out.parent / "local.log", "w") as f:
        local = subprocess.Popen([str(ASC_BIN), "grid", "--data", str(tiny_dataset), "--out", str(local_out),
                                  *GRID_ARGS, "--workers", "1"], stdout=f, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True, env={**os.environ, **DRIVER_ENV})
    cluster.drivers.append(local)
    cluster.note_session(local.pid)
    t0 = time.monotonic()
    driver = start_driver(cluster, tiny_dataset, out, log)
    # 1. a killed driver: freeze a cell after an epoch, kill the driver and that cell's process (Ray's
    # clean-up of a dead driver's job kills its trials; this makes it immediate for the frozen one)
    driver_cell, pid, driver_epoch = freeze_when_training(cluster, out, {"head", "worker1"}, timeout=300)
    kill_session(driver.pid)
    os.kill(pid, signal.SIGKILL)
    driver.wait(timeout=30)
    first_log = log.read_text()
    # 2. the same command again; under it, a lost node: freeze a cell on the worker after an epoch,
    # kill every process of the node, and let the cluster replace it
    again = start_driver(cluster, tiny_dataset, out, log)
    lost_cell, lost_pid, lost_epoch = freeze_when_training(cluster, out, {"worker1"}, timeout=400)
    peers = remote_addresses([p.pid for p in [*cluster.nodes.values(), again]])
    killed = cluster.kill_node("worker1")
    cluster.add_worker("worker2")
    rc = again.wait(timeout=600)
    wall = time.monotonic() - t0
    assert rc == 0, log.read_text()[-5000:]
    assert local.wait(timeout=600) == 0, (out.parent / "local.log").read_text()[-5000:]
    return {"out": out, "local_out": local_out, "peers": peers, "lost_cell": lost_cell, "lost_epoch": lost_epoch,
            "lost_pid": lost_pid,
            "node_processes_killed": killed, "driver_cell": driver_cell, "driver_epoch": driver_epoch, "wall": wall,
            "first_log": first_log, "second_log": log.read_text()[len(first_log):]}


@pytest.mark.slow
def test_lost_node_and_killed_driver_lose_nothing_and_count_nothing_twice(ray_grid):
    out = ray_grid["out"]
    table = pd.read_csv(out / "results.csv")
    tries = attempts(out)
    print(f"\nray grid: {ray_grid['wall']:.0f} s; lost node killed {ray_grid['node_processes_killed']} processes "
          f"during {ray_grid['lost_cell']} after epoch {ray_grid['lost_epoch']}; driver killed during "
          f"{ray_grid['driver_cell']} after epoch {ray_grid['driver_epoch']}")
    for cell, t in tries.items():
        print(f"  {cell}: " + "; ".join(f"pid {a['pid']} on {a['node_id'][:8]} from epoch {a['resumed_from_epoch']}"
                                        for a in t))
    assert ray_grid["peers"] and all(map(is_loopback, ray_grid["peers"])), ray_grid["peers"]
    assert len(table) == 4 and table["name"].is_unique and len(tries) == 4
    lost = tries[ray_grid["lost_cell"]]
    at = next(i for i, a in enumerate(lost) if a["pid"] == ray_grid["lost_pid"])  # the attempt on the lost node
    retry = lost[at + 1]
    assert retry["trial_id"] == lost[at]["trial_id"]  # the same Tune trial, retried (FailureConfig)
    assert retry["node_id"] != lost[at]["node_id"]  # on a node that is alive
    assert retry["resumed_from_epoch"] >= ray_grid["lost_epoch"] >= 1 and not retry["training_done"]
    killed = tries[ray_grid["driver_cell"]]
    assert len(killed) >= 2 and killed[1]["resumed_from_epoch"] >= ray_grid["driver_epoch"] >= 1
    for cell, t in tries.items():
        row = table.set_index("name").loc[cell]
        assert row["attempts"] == len(t) and row["node_ip"] == "127.0.0.1"
        assert json.loads((out / cell / "grid_result.json").read_text())["row"]["attempts"] == len(t)
        assert all("seconds" in a for a in t[-1:])  # the attempt that finished
    first, second = ray_grid["first_log"], ray_grid["second_log"]
    assert f"{ray_grid['lost_cell']} failed on its node (lost node or process); Tune retries it" in second
    for f in (28, 43):  # each feature cache computed once, by the first driver; the second found it
        assert first.count(f"features {f} frames/s, 64 mel: computed") == 1
        assert f"features {f} frames/s, 64 mel: reused" in second
    finished_first = len(re.findall(r"^grid: finished \d/4 ", first, re.M))
    assert len(re.findall(r"^grid: \d/4 \S+: already finished; reusing", second, re.M)) == finished_first
    assert re.findall(r"^grid: finished (\d)/4 ", second, re.M) == [str(i) for i in range(finished_first + 1, 5)]
    md = (out / "results.md").read_text()
    assert md.count("| resnet11_width0.25_") == 4 and "| ran on | attempts |" in md


@pytest.mark.slow
def test_ray_table_matches_the_local_engine(ray_grid):
    ray_table = pd.read_csv(ray_grid["out"] / "results.csv")
    local = pd.read_csv(ray_grid["local_out"] / "results.csv")
    assert list(ray_table.columns) == list(local.columns)
    pd.testing.assert_frame_equal(ray_table[STRUCTURE], local[STRUCTURE])
    scores = ["float_accuracy", "float_log_loss", "int8_accuracy", "int8_log_loss"]
    both = ray_table[["name", *scores]].merge(local[["name", *scores]], on="name", suffixes=("_ray", "_local"))
    resumed = {ray_grid["lost_cell"], ray_grid["driver_cell"]}
    print("\nresumed on Ray: " + ", ".join(sorted(resumed)) + "\n" + both.to_string())
    uninterrupted = both[~both["name"].isin(resumed)]
    # one seed, one process per cell: a cell trained without a kill scores the same on either engine;
    # a resumed one continues from a checkpoint (its scores are printed above, not compared)
    for s in scores:
        assert (uninterrupted[f"{s}_ray"] - uninterrupted[f"{s}_local"]).abs().max() < 1e-9, s
    assert set(local["attempts"]) == {1}


@pytest.mark.slow
def test_rerun_reuses_every_cell_without_ray(ray_grid, tiny_dataset):
    """A finished grid is tabulated without joining the cluster: the address is a bare TCP listener
    (it passes the reachability probe, but Ray could not talk to it)."""
    out = ray_grid["out"]
    before = (out / "results.csv").read_text()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        r = subprocess.run([str(ASC_BIN), "grid", "--data", str(tiny_dataset), "--out", str(out), *GRID_ARGS,
                            "--engine", "ray", "--address", f"127.0.0.1:{listener.getsockname()[1]}"],
                           capture_output=True, text=True, timeout=300, env={**os.environ, **DRIVER_ENV})
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("already finished; reusing") == 4 and "Ray not started" in r.stdout
    assert (out / "results.csv").read_text() == before


@pytest.mark.slow
def test_a_ray_client_address_runs_a_cell_as_the_local_engine_does(ray_grid, ray_cluster, tiny_dataset):
    """``--address ray://HOST:PORT`` (Ray Client, through the head's client server) runs one cell of
    the grid, after the lost-node run: its row is the local engine's, scores included."""
    out = ray_grid["out"].parent / "client"
    args = list(GRID_ARGS)
    args[args.index("--frames") + 1], args[args.index("--losses") + 1] = "28", "ce"
    address = f"ray://127.0.0.1:{ray_cluster.client_port}"
    # Ray's client server for a new driver failed to start once in four runs of this file (2026-11-30,
    # cause not caught then); one more driver is allowed for exactly that, and it is printed
    for attempt in (1, 2):
        driver = subprocess.Popen([str(ASC_BIN), "grid", "--data", str(tiny_dataset), "--out", str(out), *args,
                                   "--engine", "ray", "--address", address], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                                  start_new_session=True, env={**os.environ, **DRIVER_ENV, **ray_cluster.env})
        ray_cluster.drivers.append(driver)
        ray_cluster.note_session(driver.pid)
        text, _ = driver.communicate(timeout=600)
        # the head's client servers log why one could not start (its .err files), not the driver
        servers = "".join(f"\n== {f}\n{f.read_text()[-3000:]}"
                          for f in sorted(ray_cluster.root.rglob("ray_client_server*.err")))
        start_failed = any(m in text for m in ("Starting Ray client server failed", "Proxy failed to Connect"))
        if driver.returncode == 0 or not start_failed or attempt == 2:
            break
        print(f"\nray client: the client server did not start; trying once more:{servers}")
    assert driver.returncode == 0, text[-3000:] + servers
    assert f"grid: joining the Ray cluster at {address}" in text
    row = pd.read_csv(out / "results.csv")
    local = pd.read_csv(ray_grid["local_out"] / "results.csv")
    local = local[local["name"] == row["name"].iloc[0]].reset_index(drop=True)
    scores = ["float_accuracy", "float_log_loss", "int8_accuracy", "int8_log_loss"]
    pd.testing.assert_frame_equal(row[STRUCTURE + scores], local[STRUCTURE + scores])
    assert row["node_ip"].iloc[0] == "127.0.0.1" and row["attempts"].iloc[0] == 1
