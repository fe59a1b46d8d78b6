"""``asc grid``: a grid of configurations (seed Tables 4-5) into one results table, on this machine
(:mod:`asc_cli.grid`) or as Ray Tune trials (:mod:`asc_cli.grid_ray`)."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import keras_asc
from asc_cli import grid, grid_ray
from asc_cli.options import (OptionError, _clip_seconds, _csv_of, _ray_address, _window_or_clip, add_clip_seconds_arg,
                             add_data_args, models_help, non_negative_float, non_negative_int, positive_float, warn)
from asc_cli.run_options import (_parse_overrides, add_pipeline_args, add_recipe_args, check_run_options,
                                 pipeline_config_from_args, recipe_options)
from asc_cli.stages import FRAME_RATES, MEL_BANDS, PipelineConfig, PipelineFeatures
from keras_asc import artifacts


def add_parser(sub) -> None:
    s = sub.add_parser("grid", help="run a grid of configurations (seed Tables 4-5) into one results table")
    add_data_args(s)
    s.add_argument("--out", required=True, help="grid folder: one subfolder per configuration, results.csv/.md")
    s.add_argument("--work", default=None, help="feature cache folder (default OUT/work)")
    d = PipelineConfig()  # a one-cell grid is the pipeline's default configuration
    s.add_argument("--models", type=_csv_of(str), default=[d.train.model],
                   help="comma-separated; " + models_help(d.train.model))
    s.add_argument("--frames", type=_csv_of(int, FRAME_RATES), default=[d.features.frames_per_second],
                   help=f"frames per second: {','.join(map(str, FRAME_RATES))}")
    s.add_argument("--mels", type=_csv_of(int, MEL_BANDS), default=[d.features.n_mels],
                   help=f"mel bands: {','.join(map(str, MEL_BANDS))}")
    s.add_argument("--losses", type=_csv_of(str, keras_asc.LOSSES), default=[d.train.loss], help=",".join(keras_asc.LOSSES))
    s.add_argument("--window-frames", type=_csv_of(_window_or_clip), default=[None], metavar="W,...",
                   help="frames per inference, 'clip' for the whole clip, e.g. clip,64,32,16 (default clip)")
    add_clip_seconds_arg(s)
    add_pipeline_args(s)
    add_recipe_args(s)
    add_engine_args(s)
    s.set_defaults(func=run)


def add_engine_args(s: argparse.ArgumentParser) -> None:
    """``--engine`` and the Ray options of ``asc grid`` and ``asc fit`` (whose trials are grid cells);
    :func:`_check_engine_options` checks them."""
    g = s.add_argument_group("engine (see README: Grids on Ray)")
    g.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local (default): the cells one after the other in this process; ray: each cell a Ray Tune "
                        "trial, on a local Ray or the cluster at --address (needs the ray extra)")
    g.add_argument("--address", type=_ray_address, default=None,
                   help="a running Ray cluster: auto (on one of its nodes), HOST:PORT or ray://HOST:PORT; default: "
                        "start a local Ray. --out and --data must be the same path on every node")
    g.add_argument("--cpus-per-cell", type=positive_float, default=1,
                   help="CPUs Ray reserves per cell, also its worker processes (default 1)")
    g.add_argument("--gpus-per-cell", type=non_negative_float, default=0, help="GPUs Ray reserves per cell (default 0)")
    g.add_argument("--max-failures", type=non_negative_int, default=3,
                   help="retries of a cell whose node or process dies (Tune's FailureConfig; default 3)")
    g.add_argument("--storage", default=None, metavar="PATH|URI",
                   help="Ray Tune's storage_path for its experiment records (default OUT/ray_results)")
    g.add_argument("--connect-timeout", type=positive_float, default=grid_ray.DEFAULT_CONNECT_TIMEOUT,
                   metavar="SECONDS",
                   help=f"seconds to join the cluster at --address (or RAY_ADDRESS) before giving up (default "
                        f"{grid_ray.DEFAULT_CONNECT_TIMEOUT:g})")


def _grid_ray_address(a: argparse.Namespace) -> tuple[str | None, str]:
    """The cluster ``asc grid --engine ray`` joins and where it came from: ``--address``, else the
    environment's ``RAY_ADDRESS`` (as Ray itself reads it), else None (a local Ray)."""
    if a.address is not None:
        return a.address, "--address"
    env = os.environ.get("RAY_ADDRESS", "")
    if not env:
        return None, "--address"
    try:
        return grid_ray.parse_ray_address(env), "RAY_ADDRESS"
    except ValueError as e:
        raise OptionError(f"RAY_ADDRESS={env} (set in the environment, and read when --address is not given): {e}. "
                          "Unset RAY_ADDRESS to start a local Ray, or give --address") from None


def _check_engine_options(a: argparse.Namespace) -> tuple[str | None, str]:
    """The engine's options, checked (and Ray joined, bounded) before any work; returns the address."""
    ray_options = (("--address", a.address, None), ("--cpus-per-cell", a.cpus_per_cell, 1),
                   ("--gpus-per-cell", a.gpus_per_cell, 0), ("--max-failures", a.max_failures, 3),
                   ("--storage", a.storage, None),
                   ("--connect-timeout", a.connect_timeout, grid_ray.DEFAULT_CONNECT_TIMEOUT))
    if a.engine == "local":
        for option, value, default in ray_options:
            if value != default:
                warn(f"{option} {value} has no effect with --engine local (the default); add --engine ray")
        return None, "--address"
    if a.workers != keras_asc.DEFAULT_WORKERS:
        warn(f"--workers {a.workers} has no effect with --engine ray: each cell runs --cpus-per-cell "
             f"({a.cpus_per_cell:g}) worker processes")
    address, origin = _grid_ray_address(a)
    if a.storage is not None:
        try:
            grid_ray.check_storage(a.storage)
        except ValueError as e:
            raise OptionError(str(e)) from None
    if address is None and a.connect_timeout != grid_ray.DEFAULT_CONNECT_TIMEOUT:
        warn(f"--connect-timeout {a.connect_timeout:g} has no effect without --address (a local Ray is started)")
    # before any work: an error naming the fix without Ray; joining bounded by --connect-timeout
    grid_ray.import_ray(local_only=address is None, connect_timeout=a.connect_timeout if address else None)
    if address is not None:
        grid_ray.check_reachable(address, timeout=a.connect_timeout, origin=origin)  # before any work, bounded
    return address, origin


def run(a: argparse.Namespace) -> None:
    address, origin = _check_engine_options(a)
    clip_seconds = _clip_seconds(a)
    feats = [keras_asc.FeatureConfig.seed(frames_per_second=f, n_mels=n, clip_seconds=clip_seconds)
             for f in a.frames for n in a.mels]
    recipe = recipe_options(a)
    check_run_options(models=a.models, overrides=_parse_overrides(a.model_arg), feature_configs=feats,
                      windows=a.window_frames, window_hop=None, teachers=recipe.get("teachers", ()),
                      dir_folder=recipe.get("dir_folder"))
    base = pipeline_config_from_args(a, train=recipe, features=PipelineFeatures(train_split=a.train_split))
    configs = grid.grid_configs(base, models=a.models, frames=a.frames, mels=a.mels, losses=a.losses,
                                    windows=a.window_frames)
    # never write results into a folder of the user's; a grid folder of an earlier version has results.csv
    # and cells with grid_result.json
    artifacts.claim_folder(Path(a.out), stage="grid", writes=grid.GRID_TABLES, legacy=lambda f: (
        f / "results.csv").is_file() and any(f.glob("*/grid_result.json")))
    if a.engine == "ray":
        grid_ray.run_grid_ray(Path(a.data), Path(a.out), configs, clip_seconds=clip_seconds,
                              work_dir=Path(a.work) if a.work else None, address=address,
                              cpus_per_cell=a.cpus_per_cell, gpus_per_cell=a.gpus_per_cell,
                              max_failures=a.max_failures, storage=a.storage, connect_timeout=a.connect_timeout,
                              address_origin=origin)
    else:
        grid.run_grid(Path(a.data), Path(a.out), configs, clip_seconds=clip_seconds,
                      work_dir=Path(a.work) if a.work else None, workers=a.workers)
