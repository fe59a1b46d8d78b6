"""``asc validate``: an export's model on every evaluate clip, or any int8 .tflite on its int8
inputs, through TFLM and LiteRT; int8 against float; the arena."""
from __future__ import annotations

import argparse
from pathlib import Path

import firmware_harness
from asc_cli.options import UserError, add_workers_arg, non_negative_float, warn
from asc_cli.source_options import (_add_any_model_args, _any_model_kwargs, _refuse_any_model_options,
                                    check_model_source)


def add_parser(sub) -> None:
    s = sub.add_parser("validate", help="run every evaluate clip (or any int8 .tflite's int8 inputs) through TFLM and "
                                        "LiteRT; int8 vs float; arena")
    s.add_argument("model", help="RUN_DIR/export/model.tflite (its config.json beside it), or any int8 .tflite")
    s.add_argument("--data", default=None, help="the dataset (required for an export's model)")
    s.add_argument("--work", default="work")
    add_workers_arg(s)
    s.add_argument("--max-drop", type=non_negative_float, default=None, metavar="PP",
                   help="fail if int8 accuracy is more than PP points below float")
    s.add_argument("--full", action="store_true",
                   help="an export's model: every witness on every clip (TFLM Python, LiteRT's reference kernels); "
                        "by default they check a sample (stratified scene x device, at least 256 clips, plus every "
                        "clip where two every-clip executors disagree or whose top-1 margin is one int8 step) and "
                        "one TFLM truth runs every clip (docs/scale.md)")
    _add_any_model_args(s, out_default="MODEL.validation")
    s.set_defaults(func=run)


def run(a: argparse.Namespace) -> None:
    source = check_model_source(Path(a.model))
    if source.export is None:
        for option, value in (("--data", a.data), ("--max-drop", a.max_drop), ("--full", a.full or None)):
            if value is not None:
                warn(f"{option} {value} has no effect on a .tflite without an export folder (no dataset, no float "
                     "model)")
        kwargs = _any_model_kwargs(a)
        report = firmware_harness.validate(source=source, workers=a.workers, **kwargs)
        where = (f"{kwargs['out_dir'] or source.default_out_dir('validation')} "
                 "(validation_report.md/.json, inputs.npy, outputs.npy)")
    else:
        _refuse_any_model_options(a, source.path)
        report = firmware_harness.validate(source=source, data_dir=Path(a.data), work_dir=Path(a.work),
                                           workers=a.workers, max_drop=a.max_drop, full=a.full)
        where = f"{source.default_out_dir('validation')} (validation_report.md/.json, *.png)"
    print(firmware_harness.format_report(report))
    print(f"validate: reports in {where}")
    if report.failures:
        raise UserError("validation failed:\n" + "\n".join(f"  - {f}" for f in report.failures))
