"""``asc firmware``: compile the model with TFLM C++ per target and compare it bit for bit with
TFLM's Python runtime (an export on its evaluate clips, any int8 .tflite on its int8 inputs)."""
from __future__ import annotations

import argparse
from pathlib import Path

import firmware_harness
from asc_cli.options import OptionError, UserError, _chunk, _clips, _targets, add_workers_arg, warn
from asc_cli.source_options import (_add_any_model_args, _any_model_kwargs, _refuse_any_model_options,
                                    check_model_source)


def add_parser(sub) -> None:
    s = sub.add_parser("firmware", help="compile the export with TFLM C++ per target; bit-exact against TFLM Python")
    s.add_argument("export_dir", metavar="SOURCE",
                   help="RUN_DIR/export (model.tflite, C sources, config.json) or its model.tflite, or any int8 .tflite "
                        "(its C sources are generated)")
    s.add_argument("--data", default=None, help="the dataset (required for an export)")
    s.add_argument("--work", default="work")
    s.add_argument("--targets", type=_targets, default=firmware_harness.DEFAULT_TARGETS,
                   help=f"comma-separated: {', '.join(firmware_harness.TARGETS)} "
                        f"(default {','.join(firmware_harness.DEFAULT_TARGETS)})")
    s.add_argument("--clips", type=_clips, default=firmware_harness.DEFAULT_EMULATED_CLIPS,
                   help=f"evaluate clips per emulated target, a stratified sample (default "
                        f"{firmware_harness.DEFAULT_EMULATED_CLIPS}), or 'all'")
    s.add_argument("--host-clips", type=_clips, default="all",
                   help="evaluate clips per host target (default all; a number for a stratified sample)")
    s.add_argument("--from-audio", action="store_true",
                   help="also stream each clip's WAV through the exported front end (PCM -> class) and compare "
                        "it with the training features")
    s.add_argument("--chunk", type=_chunk, default=None,
                   help="PCM samples per front-end call with --from-audio (default: the hop), as a microphone "
                        "driver delivers them")
    s.add_argument("--third-party", default=None,
                   help="folder of the pinned TFLM source archives (default $ASC_THIRD_PARTY, else "
                        "../shared/third_party beside this checkout)")
    s.add_argument("--full", action="store_true",
                   help="an export: TFLM Python is the truth on every clip, from log-mel and PCM, even when asc "
                        "validate's truth is the host C++ build (by default TFLM Python checks the PCM path on "
                        "validate's witness sample; docs/scale.md)")
    add_workers_arg(s)
    _add_any_model_args(s, out_default="MODEL.firmware")
    s.set_defaults(func=run)


def run(a: argparse.Namespace) -> None:
    given = Path(a.export_dir)
    if firmware_harness.names_an_export(given):
        _warn_export_options(a)  # before the model is read: a warning is never lost to a later refusal
    source = check_model_source(given)
    third_party = Path(a.third_party) if a.third_party else None
    if source.export is None:
        kwargs = _check_any_model_options(a, source.path)
        report = firmware_harness.check_firmware(source=source, targets=a.targets, third_party_dir=third_party,
                                                 **kwargs)
        where = f"sources, programs, outputs and firmware_report.md/.json in " \
                f"{kwargs['out_dir'] or source.default_out_dir('firmware')}"
    else:
        _refuse_any_model_options(a, source.path)
        report = firmware_harness.check_firmware(
            source=source, data_dir=Path(a.data), work_dir=Path(a.work), targets=a.targets, clips=a.clips,
            host_clips=a.host_clips, from_audio=a.from_audio, chunk=a.chunk, third_party_dir=third_party,
            workers=a.workers, full=a.full)
        where = f"programs, outputs and firmware_report.md/.json in {source.default_out_dir('firmware')}"
    print(firmware_harness.format_report(report))
    print(f"firmware: {where}")
    if report.failures:
        raise UserError("firmware check failed:\n" + "\n".join(f"  - {f}" for f in report.failures))


def _warn_export_options(a: argparse.Namespace) -> None:
    """The options an export's run ignores with these targets, each named in a warning."""
    emulated = [n for n in a.targets if firmware_harness.list_targets()[n].emulated]
    if a.chunk is not None and not a.from_audio:
        warn(f"--chunk {a.chunk} has no effect without --from-audio")
    if a.clips != firmware_harness.DEFAULT_EMULATED_CLIPS and not emulated:
        warn(f"--clips {a.clips} has no effect: no emulated target in --targets ({','.join(a.targets)}); "
             "host targets take --host-clips")
    if a.host_clips != "all" and len(emulated) == len(a.targets):
        warn(f"--host-clips {a.host_clips} has no effect: no host target in --targets ({','.join(a.targets)})")


def _check_any_model_options(a: argparse.Namespace, model: Path) -> dict:
    """A .tflite of its own runs on int8 inputs only; returns its input and output options."""
    if a.from_audio:
        raise OptionError(f"--from-audio needs an export's front end; {model} is a .tflite without an export folder "
                          "(no audio front end), run on int8 inputs only (--inputs or --random)")
    for option, value, default in (("--data", a.data, None), ("--clips", a.clips, firmware_harness.DEFAULT_EMULATED_CLIPS),
                                   ("--host-clips", a.host_clips, "all"), ("--chunk", a.chunk, None),
                                   ("--full", a.full, False)):
        if value != default:
            warn(f"{option} {value} has no effect on a .tflite without an export folder: every target runs the "
                 "--inputs/--random inputs")
    return _any_model_kwargs(a)
