"""``asc fit``: the most accurate model that fits a named microcontroller's flash, RAM and time, found
by a seeded search under those limits (:mod:`asc_cli.fitting.search`), with a Pareto report and chart."""
from __future__ import annotations

import argparse
from pathlib import Path

import keras_asc
import tflite_export
from asc_cli.commands.grid import _check_engine_options, add_engine_args
from asc_cli.fitting.search import DEFAULT_BUDGET_TRIALS, DEFAULT_FINALISTS, default_limits, fit
from asc_cli.fitting.space import QUANTIZATIONS, SearchSpace
from asc_cli.options import (OptionError, UserError, _clip_seconds, _csv_of, _mcu_target, _window_or_clip, add_clip_seconds_arg,
                             add_data_args, positive_float, positive_int, warn)
from asc_cli.run_options import (_parse_overrides, add_pipeline_args, add_recipe_args, check_run_options,
                                 pipeline_config_from_args, recipe_options)
from asc_cli.stages import FRAME_RATES, MEL_BANDS, PipelineFeatures
from keras_asc import artifacts

_SPACE = SearchSpace()  # the one source of the search space's defaults


def _width(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):
        raise ValueError(text)
    return value


def _values(values: tuple) -> str:
    return ",".join("clip" if v is None else f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def add_parser(sub) -> None:
    s = sub.add_parser("fit", help="the most accurate model that fits a microcontroller's flash, RAM and time: a "
                                   "seeded search, every finalist proven on firmware, a Pareto report and chart")
    add_data_args(s)
    s.add_argument("--mcu", type=_mcu_target, required=True, metavar="NAME",
                   help=f"the microcontroller: {', '.join(tflite_export.MCU_TARGETS)}")
    s.add_argument("--out", required=True, help="fit folder: feasibility/, trials/ (a grid folder), bundle/, "
                                                "fit_report.md/.json, fit_chart.png")
    limits = s.add_argument_group("limits (default: the microcontroller's row of `tflite_export/mcu_targets.py`)")
    limits.add_argument("--max-ms-per-clip", type=positive_float, default=None, metavar="MS",
                        help="estimated front end + inference time of one clip (default: real time, the clip length)")
    limits.add_argument("--max-ram", type=positive_int, default=None, metavar="BYTES",
                        help="firmware RAM (default: the microcontroller's largest contiguous SRAM block)")
    limits.add_argument("--max-flash", type=positive_int, default=None, metavar="BYTES",
                        help="linked image's flash (default: the microcontroller's flash)")
    search = s.add_argument_group("search (docs/fit.md)")
    search.add_argument("--budget-trials", type=positive_int, default=DEFAULT_BUDGET_TRIALS, metavar="N",
                        help=f"at most N feasible candidates trained (default {DEFAULT_BUDGET_TRIALS})")
    search.add_argument("--finalists", type=positive_int, default=DEFAULT_FINALISTS,
                        help=f"candidates of the Pareto front proven on firmware (default {DEFAULT_FINALISTS})")
    search.add_argument("--models", type=_csv_of(str), default=list(_SPACE.models),
                        help=f"registry names (default {_values(_SPACE.models)})")
    search.add_argument("--widths", type=_csv_of(_width), default=list(_SPACE.widths),
                        help=f"width multipliers (default {_values(_SPACE.widths)})")
    search.add_argument("--windows", type=_csv_of(_window_or_clip), default=list(_SPACE.windows), metavar="W,...",
                        help=f"frames per inference, 'clip' for the whole clip (default {_values(_SPACE.windows)})")
    search.add_argument("--window-hops", type=_csv_of(_window_or_clip), default=list(_SPACE.hops), metavar="H,...",
                        help="frames between windows, 'clip' for the window itself (no overlap; the default)")
    search.add_argument("--frames", type=_csv_of(int, FRAME_RATES), default=list(_SPACE.frames_per_second),
                        help=f"frames per second (default {_values(_SPACE.frames_per_second)})")
    search.add_argument("--mels", type=_csv_of(int, MEL_BANDS), default=list(_SPACE.mels),
                        help=f"mel bands (default {_values(_SPACE.mels)})")
    search.add_argument("--quantization", type=_csv_of(str, QUANTIZATIONS), default=list(_SPACE.quantizations),
                        help=f"{', '.join(QUANTIZATIONS)} (default {_values(_SPACE.quantizations)})")
    s.add_argument("--loss", default="ce", choices=keras_asc.LOSSES)
    add_clip_seconds_arg(s)
    add_pipeline_args(s)
    add_recipe_args(s)
    add_engine_args(s)
    s.add_argument(artifacts.WRITE_BESIDE_OPTION, action="store_true", help=artifacts.WRITE_BESIDE_HELP)
    s.set_defaults(func=run)


def run(a: argparse.Namespace) -> None:
    overrides = _parse_overrides(a.model_arg)
    if any(k == "width" for k, _ in overrides):
        raise OptionError("--model-arg width=...: asc fit searches the width; give the widths to try with --widths")
    if a.budget != tflite_export.DEFAULT_BUDGET:
        warn(f"--budget {a.budget} has no effect with asc fit: the flatbuffer may take what --max-flash allows")
    address, origin = _check_engine_options(a)
    clip_seconds = _clip_seconds(a)
    limits = default_limits(a.mcu, clip_seconds=clip_seconds, flash_bytes=a.max_flash, ram_bytes=a.max_ram,
                            ms_per_clip=a.max_ms_per_clip)
    row = tflite_export.MCU_TARGETS[a.mcu]
    if limits.ram_bytes > row.largest_sram_bytes:
        warn(f"--max-ram {limits.ram_bytes:,d} is more than {a.mcu}'s largest SRAM block ({row.largest_sram_bytes:,d} "
             "bytes): a winner may not link for it")
    recipe = recipe_options(a)
    feats = [keras_asc.FeatureConfig.seed(frames_per_second=f, n_mels=n, clip_seconds=clip_seconds)
             for f in a.frames for n in a.mels]
    check_run_options(models=a.models, overrides=overrides, feature_configs=feats, windows=a.windows, window_hop=None,
                      teachers=recipe.get("teachers", ()), dir_folder=recipe.get("dir_folder"))
    keras_asc.describe_dataset(data_dir=Path(a.data), check_audio=False, train_split=a.train_split)  # before any work
    space = SearchSpace(models=tuple(a.models), widths=tuple(a.widths), windows=tuple(a.windows),
                        hops=tuple(a.window_hops), frames_per_second=tuple(a.frames), mels=tuple(a.mels),
                        quantizations=tuple(a.quantization))
    base = pipeline_config_from_args(a, train={**recipe, "loss": a.loss},
                                    features=PipelineFeatures(train_split=a.train_split))
    ray_options = None if a.engine == "local" else dict(
        address=address, cpus_per_cell=a.cpus_per_cell, gpus_per_cell=a.gpus_per_cell, max_failures=a.max_failures,
        storage=a.storage, connect_timeout=a.connect_timeout, address_origin=origin)
    result = fit(data_dir=Path(a.data), out_dir=Path(a.out), mcu=a.mcu, base=base, clip_seconds=clip_seconds,
                 space=space, limits=limits, budget_trials=a.budget_trials, finalists=a.finalists, engine=a.engine,
                 workers=a.workers, ray_options=ray_options)
    if result.winner is None:
        raise UserError(f"no candidate was proven within the limits of {a.mcu}; {Path(a.out) / 'fit_report.md'} lists "
                        "each candidate with the limit it broke. Widen the search space (--widths, --windows, --mels), "
                        "raise --budget-trials, or relax --max-ram/--max-flash/--max-ms-per-clip")
    print(f"fit: winner {result.winner}; bundle {result.bundle}")
