"""``asc demo``: a generated dataset through features, training, export, validation, firmware and
profile (:mod:`asc_cli.demo`)."""
from __future__ import annotations

import argparse
from pathlib import Path

import keras_asc
from asc_cli import demo
from asc_cli.options import UserError, _dataset_size, models_help, positive_int
from asc_cli.run_options import _parse_overrides, add_pipeline_args, check_run_options, pipeline_config_from_args
from asc_cli.stages import PipelineConfig


def add_parser(sub) -> None:
    s = sub.add_parser("demo", help="generated dataset -> features -> ResNet11 -> int8 + C -> TFLM validation")
    s.add_argument("--work", default="work/demo", help="where every stage writes (default work/demo)")
    s.add_argument("--size", type=_dataset_size, default="demo", help="generated dataset size: demo (default), tiny or N")
    d = PipelineConfig()  # the demo's defaults
    s.add_argument("--model", default=d.train.model, help=models_help(d.train.model))
    s.add_argument("--firmware-clips", type=positive_int, default=d.firmware_clips,
                   help=f"evaluate clips (stratified) for cortex-m4 under QEMU when the Arm toolchain is "
                        f"installed (default {d.firmware_clips}); the host runs every clip, from log-mel and from PCM")
    add_pipeline_args(s)
    s.set_defaults(func=run)


def run(a: argparse.Namespace) -> None:
    clip_seconds = keras_asc.dataset_clip_seconds(size=a.size)
    check_run_options(models=[a.model], overrides=_parse_overrides(a.model_arg), windows=[None], window_hop=None,
                      feature_configs=[keras_asc.FeatureConfig.seed(clip_seconds=clip_seconds)])
    result = demo.run_demo(Path(a.work), size=a.size, seed=a.seed, workers=a.workers,
                           cfg=pipeline_config_from_args(a, train={"model": a.model}, firmware_clips=a.firmware_clips))
    if not result.validation.passed:
        raise UserError("validation failed: " + "; ".join(result.validation.failures))
    if result.firmware is not None and not result.firmware.passed:
        raise UserError("firmware check failed: " + "; ".join(result.firmware.failures))
