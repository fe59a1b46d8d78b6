"""``asc profile``: estimated milliseconds per inference and per clip on Cortex-M microcontrollers."""
from __future__ import annotations

import argparse
from pathlib import Path

import firmware_harness
import tflite_export
from asc_cli.options import OptionError, UserError, _mcus, _number, _profile_targets, seed_int
from asc_cli.source_options import check_model_source


def add_parser(sub) -> None:
    most = firmware_harness.MAX_PROFILE_INFERENCES
    s = sub.add_parser("profile", help="estimated ms per inference and per clip on Cortex-M microcontrollers, from "
                                       "exact per-operator instruction counts under QEMU and a cycle model per core")
    s.add_argument("source", help="an export folder (RUN_DIR/export) or its model.tflite, or any int8 .tflite")
    s.add_argument("--targets", type=_profile_targets, default=firmware_harness.DEFAULT_PROFILE_TARGETS,
                   help=f"Cortex-M images to count: {', '.join(firmware_harness.PROFILE_TARGETS)} "
                        f"(default {','.join(firmware_harness.DEFAULT_PROFILE_TARGETS)})")
    s.add_argument("--mcu", type=_mcus, default=None, metavar="NAME,...",
                   help=f"microcontrollers to estimate, of {', '.join(tflite_export.MCU_TARGETS)} (default: every one "
                        "whose core is in --targets)")
    s.add_argument("--inferences", type=_number(int, minimum=1, inclusive=True, maximum=most,
                                                what=f"a whole number from 1 to {most}"),
                   default=1, help="seeded random int8 inputs counted (default 1; at most "
                                   f"{most}: the counts of every input must equal the first's)")
    s.add_argument("--seed", type=seed_int, default=0)
    s.add_argument("--out", default=None, help="profile folder (default EXPORT/profile, or MODEL.profile/ beside a .tflite)")
    s.add_argument("--third-party", default=None, help="folder of the pinned TFLM source archives")
    s.set_defaults(func=run)


def run(a: argparse.Namespace) -> None:
    try:  # an --mcu whose core is not in --targets: an option value, before any work
        firmware_harness.profile_mcus(targets=a.targets, mcus=a.mcu)
    except firmware_harness.FirmwareError as e:
        raise OptionError(str(e)) from None
    source = check_model_source(Path(a.source))
    out = Path(a.out) if a.out else source.default_out_dir("profile")
    report = firmware_harness.profile(source=source, out_dir=out, targets=a.targets, mcus=a.mcu,
                                      inferences=a.inferences, seed=a.seed,
                                      third_party_dir=Path(a.third_party) if a.third_party else None)
    print(firmware_harness.format_report(report))
    print(f"profile: profile_report.md/.json and profile_operators.png in {out}")
    if report.failures:
        raise UserError("profile failed:\n" + "\n".join(f"  - {f}" for f in report.failures))
