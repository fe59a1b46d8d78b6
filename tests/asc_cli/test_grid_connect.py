"""Joining a Ray cluster is bounded (``asc grid --engine ray --address``): an address where nothing
listens is refused at once, naming it and how to start or reach a head; an endpoint that accepts
but never answers as Ray is given up after about ``--connect-timeout`` seconds. Everything binds to
127.0.0.1 and runs in bounded time."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

import pytest

from asc_cli import grid_ray
from asc_cli.grid_ray import ClusterError, check_reachable, parse_ray_address
from asc_cli.main import main


def _closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_address_where_nothing_listens_is_refused_naming_it():
    address = f"127.0.0.1:{_closed_port()}"
    with pytest.raises(ClusterError) as e:
        check_reachable(address, timeout=5)
    assert str(e.value).startswith(f"--address {address}: cannot connect") and "ray start --head" in str(e.value)


#: What asc grid sets in its environment to bound the join (restored after each test here).
RAY_SETTINGS = ("RAY_gcs_rpc_server_connect_timeout_s", "RAY_py_gcs_connect_timeout_s",
                "RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S", "RAY_CLIENT_MAX_CONNECTION_TIMEOUT_S", "RAY_ADDRESS")


def test_grid_on_an_address_where_nothing_listens_exits_1_before_any_work(tmp_path, capsys, monkeypatch):
    pytest.importorskip("ray")
    for name in RAY_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    address = f"127.0.0.1:{_closed_port()}"
    status = main(["grid", "--data", "D", "--out", "O", "--engine", "ray", "--address", address,
                   "--connect-timeout", "5"])
    err = capsys.readouterr().err
    assert status == 1 and f"--address {address}: cannot connect" in err and "RAY_ADDRESS" not in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text", ["auto", "10.0.0.1:6379", "ray://head:10001", "[::1]:6379"])
def test_ray_addresses_are_taken_as_given(text):
    assert parse_ray_address(text) == text


@pytest.mark.parametrize("text", ["http://head:8265", "head", "head:0", "ray://head"])
def test_other_addresses_are_refused(text):
    with pytest.raises(ValueError):
        parse_ray_address(text)


_SILENT_HEAD = textwrap.dedent("""
    import socket, threading
    from asc_cli.grid_ray import ClusterError, _connect, import_ray

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted = []


    def accept_and_say_nothing():
        while True:
            accepted.append(server.accept())


    threading.Thread(target=accept_and_say_nothing, daemon=True).start()
    ray, _ = import_ray(connect_timeout=4)  # as asc grid imports it: Ray reads its connect settings then
    try:
        _connect(ray, f"127.0.0.1:{server.getsockname()[1]}", cpus_per_cell=1, gpus_per_cell=0, connect_timeout=4,
                 log=lambda *_: None)
    except ClusterError as e:
        print("REFUSED", e)
""")


@pytest.mark.slow
def test_joining_an_endpoint_that_never_answers_as_ray_is_bounded(tmp_path):
    """A listener that accepts and says nothing: the join gives up with a message naming the
    address (run in a child process that the test kills if it outlives its bound)."""
    pytest.importorskip("ray")
    try:
        proc = subprocess.run([sys.executable, "-c", _SILENT_HEAD], capture_output=True, text=True, timeout=150,
                              cwd=tmp_path, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    except subprocess.TimeoutExpired:
        pytest.fail("joining a silent endpoint with --connect-timeout 4 did not give up within 150 s")
    assert "REFUSED --address 127.0.0.1:" in proc.stdout, proc.stdout + proc.stderr[-2000:]
    assert "could not join a Ray cluster there within about 4 s" in proc.stdout


def test_a_client_server_that_cannot_start_a_driver_server_is_named_with_the_heads_setting(monkeypatch):
    """Ray Client's head answers, but the server it starts for this driver does not come up in Ray's
    30 s (CI, 2026-12-07): the error is the last line of the server's traceback, the logs to read and
    the head's setting, not the first 300 characters of a traceback."""
    failure = ("Initialization failure from server:\nTraceback (most recent call last):\n  File \"proxier.py\", "
               "line 765, in Datapath\n    if not self.proxy_manager.start_specific_server(\nRuntimeError: Proxy "
               "failed to Connect to backend! Check `ray_client_server.err`")

    def init(**_):
        raise ConnectionError(failure)

    monkeypatch.setattr(grid_ray, "check_reachable", lambda *a, **k: None)
    with pytest.raises(ClusterError) as e:
        grid_ray._connect(type("FakeRay", (), {"init": staticmethod(init)}), "ray://127.0.0.1:10001", cpus_per_cell=1,
                          gpus_per_cell=0, connect_timeout=4, log=lambda *_: None)
    assert "RuntimeError: Proxy failed to Connect to backend" in str(e.value)
    assert "RAY_CLIENT_SERVER_CHECK_CHANNEL_TIMEOUT_S" in str(e.value) and "Traceback" not in str(e.value)
