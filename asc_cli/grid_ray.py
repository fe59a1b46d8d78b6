"""The Ray engine of ``asc grid``: each grid cell is one Ray Tune trial, from one machine to a cluster.

``asc grid ... --engine ray [--address auto|HOST:PORT|ray://HOST:PORT]`` runs the same cells as the
local engine (:func:`asc_cli.grid.run_grid`): a ``tune.grid_search`` over the names of the cells
still to run (their :class:`~asc_cli.stages.PipelineConfig` objects travel by
``tune.with_parameters``, never through ``param_space``), each trial calling the shared
:func:`asc_cli.grid.run_grid_cell`, so the rows, ``grid_result.json`` and the
``results.csv``/``results.md`` tables are those of the local engine.

Storage: the grid folder (``--out``: run folders, ``work/features``, ``grid_attempts/``, the
tables) and ``--data`` must be the same path on every node and on the machine running ``asc grid``
(a shared file system); this is checked on every node before any cell starts. Tune's own records
(experiment state, each trial's reported results) go to ``--storage`` (Ray's ``storage_path``:
``OUT/ray_results`` by default, or a shared path or an ``s3://``/``gs://`` URI).

Order of work: (1) cells that already have ``grid_result.json`` for their configuration are
reused, never run; (2) every node is checked to see ``--out`` and ``--data``; (3) each distinct
feature configuration's cache is built once, by one Ray task per configuration (so no two
processes ever build the same cache entry: ``keras_asc.feature_cache`` stages an entry in a folder
next to it and renames it, and its clean-up of abandoned staging folders trusts process ids, which
mean nothing on another node); (4) the cells run as trials, ``--cpus-per-cell``/``--gpus-per-cell``
reserved each, retried up to ``--max-failures`` times when their node or process dies; a retried
cell resumes its training from the run folder's last finished epoch (``state.json`` +
``checkpoints/``), and ``OUT/grid_attempts/<name>.json`` records every attempt (node, process,
resumed epoch). A cell's folder is locked while a process runs it (:func:`asc_cli.grid.cell_lock`).
"""
from __future__ import annotations

import json
import os
import socket
import time
import uuid
from pathlib import Path

from asc_cli.grid import cell_line, finished_cell_row, run_grid_cell, write_grid_tables
from keras_asc.errors import AscError

#: The exact Ray the engine is tested with (pyproject.toml's ``ray`` extra).
RAY_REQUIREMENT = "ray[tune]==2.60.0"
#: ``--connect-timeout``: seconds to join the Ray cluster at --address before the grid gives up.
DEFAULT_CONNECT_TIMEOUT = 60.0
HEAD_HINT = ("Start a head with `ray start --head` on the head node (it prints the address to join, HOST:6379; "
             "`ray start --address HOST:6379` on the other nodes), check that this machine can reach it (firewall, "
             "VPN, the node's --node-ip-address), pass that address (`auto` on a node of the cluster), or leave "
             "--address out to start a local Ray")
INSTALL_HINT = ("install the pinned extra in this checkout with `pip install -e '.[ray]'` (./dev.sh installs it), "
                "or run the grid with --engine local")


class RayUnavailable(AscError):
    """``--engine ray`` without Ray installed."""


class ClusterError(AscError):
    """The Ray cluster cannot be joined, or a node cannot see the grid folder or the data."""


class CellFailed(AscError):
    """A grid cell failed on every attempt (its error is named)."""


def import_ray(*, local_only: bool = False, connect_timeout: float | None = None):
    """``(ray, ray.tune)``, or :class:`RayUnavailable` naming the fix. ``local_only`` (no
    ``--address``: a Ray started here for this grid alone) keeps that Ray on 127.0.0.1: Ray otherwise
    binds a single-machine instance to the host's routed address (its switch for single-machine
    clusters, read when Ray is imported). ``connect_timeout`` bounds joining a cluster
    (:func:`_bound_ray_connect`; Ray reads most of those settings when it is first imported)."""
    if local_only:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    if connect_timeout is not None:
        _bound_ray_connect(connect_timeout)
    try:
        import ray  # heavy: Ray is optional (the ray extra) and slow to import
        from ray import tune
    except ImportError as e:
        raise RayUnavailable(f"--engine ray needs Ray ({RAY_REQUIREMENT}), which is not installed here ({e}); "
                             f"{INSTALL_HINT}") from None
    return ray, tune


# ----------------------------------------------------------------------------- the address
def parse_ray_address(text: str) -> str:
    """``auto``, ``HOST:PORT`` (a head's GCS address) or ``ray://HOST:PORT`` (its Ray Client server),
    as given; :class:`ValueError` saying what is wrong with anything else (another scheme such as the
    dashboard's ``http://``, no port)."""
    scheme, sep, rest = text.partition("://")
    if sep and scheme != "ray":
        raise ValueError(f"{scheme}:// is not an address a driver joins a Ray cluster at (the dashboard's "
                         "http://HOST:8265 is for `ray job submit`); give the head's HOST:PORT (`ray start --head` "
                         "prints it, port 6379 by default), ray://HOST:10001 for Ray Client, or auto")
    host, colon, port = (rest if sep else text).rpartition(":")
    if text == "auto" or (colon and host and port.isdigit() and 0 < int(port) < 65536):
        return text
    raise ValueError(f"takes auto, HOST:PORT or ray://HOST:PORT (a running Ray cluster), got {text!r}")


def _host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of ``HOST:PORT`` or ``ray://HOST:PORT``; None for ``auto``."""
    if address == "auto":
        return None
    host, _, port = address.removeprefix("ray://").rpartition(":")
    return host.strip("[]"), int(port)


def check_reachable(address: str, *, timeout: float, origin: str = "--address") -> None:
    """One TCP connection to ``address`` (``origin`` names where it came from), bounded by
    ``timeout`` seconds: :class:`ClusterError` naming the address and how to start or reach a head
    when nothing accepts there. ``auto`` is looked up by Ray itself."""

    where = _host_port(address)
    if where is None:
        return
    try:
        socket.create_connection(where, timeout=timeout).close()
    except socket.timeout:
        raise ClusterError(f"{origin} {address}: no answer within {timeout:g} s (--connect-timeout); nothing there "
                           f"accepted a connection. {HEAD_HINT}") from None
    except OSError as e:
        raise ClusterError(f"{origin} {address}: cannot connect ({e.strerror or e}); no Ray head listens there. "
                           f"{HEAD_HINT}") from None


#: Ray's setting of how many GCS connection attempts a driver makes (about 1 s apart), read when it
#: connects; also how long a local Ray waits for its GCS to start, so it is set only around the join.
GCS_ATTEMPTS_SETTING = "RAY_gcs_server_port_wait_time_s"


def _bound_ray_connect(timeout: float) -> None:
    """Ray's connection timeouts, so that one attempt to join takes about ``timeout`` seconds:
    ``RAY_py_gcs_connect_timeout_s`` after ``RAY_gcs_rpc_server_connect_timeout_s`` tries (read when
    Ray is first imported: :func:`import_ray` sets them before), and Ray Client's three attempts (5 s
    more each; read when ``ray://`` is first used). :func:`_connect` makes it one attempt
    (:data:`GCS_ATTEMPTS_SETTING`)."""
    rpc = min(5, max(1, int(timeout // 4)))
    os.environ["RAY_gcs_rpc_server_connect_timeout_s"] = str(rpc)
    os.environ["RAY_py_gcs_connect_timeout_s"] = str(max(1, int(timeout) - 2 * rpc))
    os.environ["RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S"] = str(max(1, int((timeout - 15) // 3)))
    os.environ["RAY_CLIENT_MAX_CONNECTION_TIMEOUT_S"] = str(max(1, int(timeout)))


# ----------------------------------------------------------------------------- on the nodes
def _cell_trainable(params: dict, *, cells: dict, data_dir: str, work_dir: str, out_dir: str,
                    clip_seconds: float, workers: int) -> None:
    """One Tune trial: one grid cell (:func:`asc_cli.grid.run_grid_cell`), its row reported.

    A mistake the user can fix (:class:`AscError`) is reported, not raised, so that Tune does not
    retry what would fail again; anything else (a lost node, a killed process, a bug) fails the
    trial and Tune retries it."""
    import keras_asc.tf_setup  # noqa: F401  (tf_keras, never Keras 3; before TensorFlow)
    import ray
    from ray import tune

    name = params["cell"]
    cfg = cells[name]
    node_id = ray.get_runtime_context().get_node_id()
    placement = {"engine": "ray", "node_ip": _node_ip(ray, node_id), "node_id": node_id,
                 "trial_id": tune.get_context().get_trial_id()}
    try:
        row = run_grid_cell(Path(data_dir), Path(work_dir), Path(out_dir) / name, cfg, clip_seconds=clip_seconds,
                            workers=workers, placement=placement, log=print)
    except AscError as e:
        tune.report({"cell": name, "row_json": "", "error": f"{type(e).__name__}: {e}"})
        return
    tune.report({"cell": name, "row_json": json.dumps(row), "error": "", "attempts": row["attempts"],
                 "float_accuracy": row.get("float_accuracy"), "int8_accuracy": row.get("int8_accuracy")})


def _node_ip(ray, node_id: str) -> str:
    """The address the node joined the cluster with (``ray start --node-ip-address``), which is
    what ``ray status`` shows; not the host's routed address."""
    for node in ray.nodes():
        if node.get("NodeID") == node_id:
            return node.get("NodeManagerAddress") or ray.util.get_node_ip_address()
    return ray.util.get_node_ip_address()


def _build_features(data_dir: str, work_dir: str, feature_config: dict, workers: int,
                    train_split: str | None, impulse_responses: tuple[str, int] | None) -> dict:
    """A Ray task: one feature configuration's cache (computed, or found complete), and with
    ``impulse_responses`` (a folder of WAVs, copies per clip: TrainConfig's ``dir_folder`` and
    ``dir_copies``) their copies of the training clips, which the trials would otherwise each
    compute at once."""
    import keras_asc.tf_setup  # noqa: F401  (tf_keras, never Keras 3; before TensorFlow, in the Ray worker)

    lines: list[str] = []
    fs = keras_asc.extract_features(data_dir=Path(data_dir), work_dir=Path(work_dir),
                                    config=keras_asc.FeatureConfig.from_dict(feature_config), workers=workers,
                                    train_split=train_split, log=lambda m: lines.append(str(m)))
    if impulse_responses is not None:
        folder, copies = impulse_responses
        keras_asc.extract_impulse_response_features(features=fs, folder=Path(folder), copies=copies,
                                                    workers=workers, log=lambda m: lines.append(str(m)))
    return {"key": fs.config["key"], "path": str(fs.path), "computed": not any("reusing cache" in m for m in lines),
            "hostname": socket.gethostname(), "log": lines}


def _node_sees(marker: str, data_dir: str) -> dict:
    """A Ray task pinned to one node: does it see the driver's marker in OUT and the dataset?"""

    import ray  # heavy: Ray is optional (the ray extra) and slow to import

    return {"hostname": socket.gethostname(), "node_ip": _node_ip(ray, ray.get_runtime_context().get_node_id()),
            "out": Path(marker).is_file(), "data": (Path(data_dir) / "meta.csv").is_file()}


# ----------------------------------------------------------------------------- on the driver
def _connect(ray, address: str | None, *, cpus_per_cell: float, gpus_per_cell: float,
             connect_timeout: float = DEFAULT_CONNECT_TIMEOUT, origin: str = "--address", log) -> None:
    """Join the cluster at ``address`` (named ``origin`` in messages: ``--address`` or
    ``RAY_ADDRESS``) within about ``connect_timeout`` seconds, or start a local Ray (``address``
    None: never the one RAY_ADDRESS names, which the caller passes as ``address``)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # nothing leaves the machine unless asked
    env = {"env_vars": {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}}
    try:
        if address:
            check_reachable(address, timeout=connect_timeout, origin=origin)
            _bound_ray_connect(connect_timeout)  # effective here for what Ray reads late, else set by import_ray
            log(f"grid: joining the Ray cluster at {address} ({origin}; at most about {connect_timeout:g} s)")
            before = os.environ.get(GCS_ATTEMPTS_SETTING)
            os.environ[GCS_ATTEMPTS_SETTING] = "1"
            try:
                ray.init(address=address, runtime_env=env, logging_level="warning")
            finally:
                if before is None:
                    os.environ.pop(GCS_ATTEMPTS_SETTING, None)
                else:
                    os.environ[GCS_ATTEMPTS_SETTING] = before
        else:
            log("grid: starting a local Ray (no --address); it stops with this command")
            ray.init(address="local", include_dashboard=False, runtime_env=env, logging_level="warning",
                     object_store_memory=200 * 1024 * 1024)
    except (ConnectionError, RuntimeError, ValueError) as e:
        if not address:
            raise ClusterError(f"could not start a local Ray ({str(e)[:300]}); check that this machine can run Ray "
                               "(`ray start --head` shows why it cannot), or join a running cluster with --address")
        lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()] or [type(e).__name__]
        if address.startswith("ray://") and ("client server" in str(e).lower() or "Proxy failed" in str(e)):
            # the head's client server answered, but the server it starts for this driver did not come up
            raise ClusterError(f"{origin} {address}: the head's Ray Client server could not start a server for this "
                               f"driver ({lines[-1][:300]}). Its logs on the head (ray_client_server_*.err in the "
                               "session's logs folder) say why; a busy head may need more than Ray's 30 s: start it "
                               "with RAY_CLIENT_SERVER_CHECK_CHANNEL_TIMEOUT_S=120 in its environment") from None
        raise ClusterError(f"{origin} {address}: could not join a Ray cluster there within about {connect_timeout:g} s "
                           f"(--connect-timeout; {lines[-1][:300]}). {HEAD_HINT}") from None
    total = ray.cluster_resources()
    if total.get("CPU", 0) < cpus_per_cell or total.get("GPU", 0) < gpus_per_cell:
        ray.shutdown()
        raise ClusterError(f"--cpus-per-cell {cpus_per_cell:g} --gpus-per-cell {gpus_per_cell:g}: the Ray cluster "
                           f"has {total.get('CPU', 0):g} CPUs and {total.get('GPU', 0):g} GPUs in all, so no cell "
                           "could ever start; ask for less per cell or add nodes")


def _check_shared(ray, out_dir: Path, data_dir: Path, log) -> list[dict]:
    """Every alive node must see ``--out`` (a marker written here) and ``--data``, at the same paths."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # heavy: optional Ray

    marker = out_dir / f".asc-grid-shared-check-{uuid.uuid4().hex}"
    marker.write_text("written by the asc grid driver; removed when the check is done\n")
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        task = ray.remote(num_cpus=0, max_retries=0)(_node_sees)
        refs = [task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                .remote(str(marker), str(data_dir)) for n in nodes]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=300)
        if len(ready) < len(refs):
            raise ClusterError("not every Ray node answered within 300 s whether it sees --out and --data; check "
                               "`ray status` and the nodes' logs, then run the grid again")
        seen = ray.get(refs)
    finally:
        marker.unlink(missing_ok=True)
    blind = [s for s in seen if not (s["out"] and s["data"])]
    if blind:
        what = "; ".join(f"{s['hostname']} ({s['node_ip']}) does not see "
                         + " and ".join(x for x, ok in (("--out " + str(out_dir), s["out"]),
                                                        ("--data " + str(data_dir), s["data"])) if not ok)
                         for s in blind)
        raise ClusterError(f"{what}. With --engine ray the grid folder and the dataset must be the same path on "
                           "every node and on the machine running `asc grid`: put them on a shared file system "
                           "(NFS, EFS, Filestore, a ReadWriteMany volume) mounted at the same place everywhere")
    log(f"grid: {len(seen)} Ray node(s) see --out and --data: "
        + ", ".join(sorted({f"{s['hostname']} ({s['node_ip']})" for s in seen})))
    return seen


def _build_feature_caches(ray, configs, *, data_dir: Path, work_dir: Path, clip_seconds: float,
                          cpus_per_cell: float, workers: int, log) -> None:
    """One Ray task per distinct feature configuration, before any trial: each cache is computed
    once, by one process, and the trials only read it."""

    distinct = sorted({(c.features, (c.train.dir_folder, c.train.dir_copies) if c.train.dir_p > 0 else None)
                       for c in configs}, key=repr)
    task = ray.remote(num_cpus=cpus_per_cell, max_retries=3)(_build_features)
    refs = [task.remote(str(data_dir), str(work_dir), features.feature_config(clip_seconds=clip_seconds).to_dict(),
                        workers, features.train_split, impulse_responses) for features, impulse_responses in distinct]
    for (features, _), ref in zip(distinct, refs):
        try:
            got = ray.get(ref)
        except ray.exceptions.RayTaskError as e:
            cause = e.as_instanceof_cause()
            if isinstance(cause, AscError):
                raise cause from None
            raise
        log(f"grid: features {features.frames_per_second} frames/s, {features.n_mels} mel: "
            f"{'computed' if got['computed'] else 'reused'} on {got['hostname']} -> {got['path']}")
        for line in got["log"]:
            if "warning" in line:
                log(line)


def _cell_lines_callback(tune, total: int, already: int, log):
    class CellLines(tune.Callback):
        """The grid's own line per finished cell, and one per retry, beside Ray's progress. Tune
        pickles its callbacks with the experiment: the log function is not part of the state."""

        def __init__(self, total: int, already: int, log):
            self.total, self.done, self.log = total, already, log

        def __getstate__(self):
            return {k: v for k, v in self.__dict__.items() if k != "log"}

        def __setstate__(self, state):
            self.__dict__.update(state)
            self.log = _print

        def on_trial_complete(self, iteration, trials, trial, **info):

            result = trial.last_result or {}
            if result.get("row_json"):
                self.done += 1
                self.log(cell_line(json.loads(result["row_json"]), self.done, self.total))
            elif result.get("error"):
                self.log(f"grid: {result.get('cell', trial.config.get('cell'))} failed: {result['error']}")

        def on_trial_recover(self, iteration, trials, trial, **info):
            self.log(f"grid: {trial.config.get('cell')} failed on its node (lost node or process); Tune retries it, "
                     f"resuming from its run folder (failure {trial.num_failures} of at most {trial.max_failures})")

        def on_trial_error(self, iteration, trials, trial, **info):
            self.log(f"grid: {trial.config.get('cell')} failed {trial.num_failures} time(s); no retries left")

    return CellLines(total, already, log)


def _print(*args) -> None:
    print(*args, flush=True)


def run_grid_ray(data_dir: Path, out_dir: Path, configs: list, *, clip_seconds: float,
                 work_dir: Path | None = None, address: str | None = None, cpus_per_cell: float = 1,
                 gpus_per_cell: float = 0, max_failures: int = 3, storage: str | None = None,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT, address_origin: str = "--address",
                 verbose: int = 1, log=print):
    """The grid on Ray; returns the same table as :func:`asc_cli.grid.run_grid` and writes
    the same ``results.csv``/``results.md``. Each cell runs with ``--cpus-per-cell`` worker processes
    (rounded down, at least 1). Joining the cluster at ``address`` (named ``address_origin`` in
    messages) takes at most about ``connect_timeout`` seconds."""

    ray, tune = import_ray(local_only=not address, connect_timeout=connect_timeout if address else None)
    data_dir, out_dir = Path(data_dir).resolve(), Path(out_dir).resolve()
    work_dir = Path(work_dir).resolve() if work_dir else out_dir / "work"
    out_dir.mkdir(parents=True, exist_ok=True)
    workers = max(1, int(cpus_per_cell))
    rows = {c.name: finished_cell_row(out_dir / c.name, c) for c in configs}
    for i, c in enumerate(configs, 1):
        if rows[c.name] is not None:
            log(f"grid: {i}/{len(configs)} {c.name}: already finished; reusing")
    pending = [c for c in configs if rows[c.name] is None]
    if pending:
        t0 = time.perf_counter()
        _connect(ray, address, cpus_per_cell=cpus_per_cell, gpus_per_cell=gpus_per_cell,
                 connect_timeout=connect_timeout, origin=address_origin, log=log)
        try:
            _check_shared(ray, out_dir, data_dir, log)
            _build_feature_caches(ray, pending, data_dir=data_dir, work_dir=work_dir, clip_seconds=clip_seconds,
                                  cpus_per_cell=cpus_per_cell, workers=workers, log=log)
            results = _run_trials(ray, tune, pending, data_dir=data_dir, work_dir=work_dir, out_dir=out_dir,
                                  clip_seconds=clip_seconds, workers=workers, cpus_per_cell=cpus_per_cell,
                                  gpus_per_cell=gpus_per_cell, max_failures=max_failures, storage=storage,
                                  already=len(configs) - len(pending), total=len(configs), verbose=verbose, log=log)
        finally:
            ray.shutdown()
        log(f"grid: {len(pending)} cell(s) on Ray in {time.perf_counter() - t0:.1f} s")
        failures = []
        for c in pending:
            row, error = results.get(c.name, (None, "no result reported"))
            if row is not None:
                rows[c.name] = row
            else:
                failures.append(f"{c.name}: {error}")
        if failures:
            raise CellFailed(f"{len(failures)} of {len(configs)} grid cells failed (the others are kept in "
                             f"{out_dir}, and a rerun of the same command runs only these):\n"
                             + "\n".join(f"  - {f}" for f in failures))
    else:
        log("grid: every cell already finished; Ray not started")
    return write_grid_tables(out_dir, [rows[c.name] for c in configs], log=log)


def check_storage(storage: str) -> None:
    """``--storage``: a URI (``s3://``, ``gs://``, ...) as given, or a folder that is or can be
    created; :class:`ValueError` naming the path in the way (a file) otherwise."""
    if "://" in storage:
        return
    path = Path(storage)
    for p in (path, *path.parents):
        if p.exists() or p.is_symlink():
            if not p.is_dir():
                where = "a file" if p == path else "a file on its path"
                raise ValueError(f"--storage {storage}: {p} is {where}, not a "
                                 "folder; Ray Tune writes its experiment records into a folder. Give a folder (it is "
                                 "created), or an s3:// or gs:// URI")
            return


def _storage_path(storage: str | None, out_dir: Path) -> str:
    """Ray Tune's storage_path: a URI as given, a path made absolute (trials run elsewhere)."""
    if storage is None:
        return str(out_dir / "ray_results")
    return storage if "://" in storage else str(Path(storage).resolve())


def _run_trials(ray, tune, pending: list, *, data_dir: Path, work_dir: Path, out_dir: Path, clip_seconds: float,
                workers: int, cpus_per_cell: float, gpus_per_cell: float, max_failures: int, storage: str | None,
                already: int, total: int, verbose: int, log) -> dict[str, tuple[dict | None, str]]:
    """The pending cells as one Tune experiment; returns ``{name: (row or None, error)}``."""

    trainable = tune.with_resources(
        tune.with_parameters(_cell_trainable, cells={c.name: c for c in pending}, data_dir=str(data_dir),
                             work_dir=str(work_dir), out_dir=str(out_dir), clip_seconds=clip_seconds,
                             workers=workers),
        {"cpu": cpus_per_cell, "gpu": gpus_per_cell})
    name = f"asc-grid-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    tuner = tune.Tuner(
        trainable,
        param_space={"cell": tune.grid_search([c.name for c in pending])},
        tune_config=tune.TuneConfig(reuse_actors=False),
        run_config=tune.RunConfig(
            name=name, storage_path=_storage_path(storage, out_dir), verbose=verbose,
            failure_config=tune.FailureConfig(max_failures=max_failures),
            callbacks=[_cell_lines_callback(tune, total, already, log)]))
    log(f"grid: {len(pending)} cell(s) as Ray Tune trials of experiment {name} "
        f"({cpus_per_cell:g} CPU, {gpus_per_cell:g} GPU each; up to {max_failures} retries)")
    grid = tuner.fit()
    out: dict[str, tuple[dict | None, str]] = {}
    for result in grid:
        cell = (result.config or {}).get("cell")
        metrics = result.metrics or {}
        if result.error is None and metrics.get("row_json"):
            out[cell] = (json.loads(metrics["row_json"]), "")
        elif result.error is None and metrics.get("error"):
            out[cell] = (None, metrics["error"])
        else:
            last = (str(result.error).strip().splitlines() or [""])[-1]
            out[cell] = (None, f"{type(result.error).__name__}: {last} (after {max_failures} retries; Tune's "
                               f"records: {result.path})")
    for c in pending:  # the row on the shared folder is the truth: a cell counted once, from its grid_result.json
        row = finished_cell_row(out_dir / c.name, c)
        if c.name in out and out[c.name][0] is not None:
            if row is None:
                raise ClusterError(f"{out_dir / c.name}: the cell finished on a Ray node but its grid_result.json "
                                   "is not visible here; --out must be on a file system every node shares")
            out[c.name] = (row, "")
    return out
