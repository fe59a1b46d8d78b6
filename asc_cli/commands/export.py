"""``asc export``: an int8 .tflite under the flash budget and C sources for TFLM."""
from __future__ import annotations

import argparse
from pathlib import Path

import firmware_harness
import tflite_export
from asc_cli.options import (OptionError, _dcase_year, _mcu_target, _number, _targets_or_none, add_workers_arg,
                             non_negative_int, positive_int, seed_int, warn)

_fraction = _number(float, minimum=0, inclusive=False, maximum=1.0, what="a fraction above 0 and at most 1")
_holdout_fraction = _number(float, minimum=0, inclusive=False, maximum=0.5, what="a fraction above 0 and at most 0.5")


def add_parser(sub) -> None:
    s = sub.add_parser("export", help="int8 .tflite under the flash budget + C sources for TFLM")
    s.add_argument("run_dir")
    s.add_argument("--data", required=True, help="dataset the run was trained on (calibration clips)")
    s.add_argument("--work", default="work")
    s.add_argument("--budget", type=positive_int, default=tflite_export.DEFAULT_BUDGET,
                   help="max flatbuffer bytes (default 128 KiB)")
    s.add_argument("--dcase-year", type=_dcase_year, default=tflite_export.DCASE_YEAR_AUTO, metavar="YEAR|auto|none",
                   help="count parameters and MACs per second of audio as DCASE Task 1 of YEAR did (2021: 128 KB of "
                        "non-zero parameters; 2022-2025: 128 kB of parameters and 30 M MACs per one-second inference) "
                        "and refuse a model over its limits; auto (default): 2021 for the TAU 2020 layout, 2025 for "
                        "TAU 2022; none: no DCASE check")
    s.add_argument("--ram-budget", type=positive_int, default=None, metavar="BYTES",
                   help="max firmware RAM (arena + front end + static data and stack estimate); default none")
    s.add_argument("--target", type=_mcu_target, default=None, metavar="NAME",
                   help=f"a microcontroller ({', '.join(tflite_export.MCU_TARGETS)}): lowers "
                        "--budget to its flash minus the runtime and --ram-budget to its largest SRAM block")
    s.add_argument("--calibration-size", type=positive_int, default=tflite_export.DEFAULT_CALIBRATION)
    q = tflite_export.ExportConfig()
    s.add_argument("--seed", type=seed_int, default=q.seed, help="calibration sample seed")
    s.add_argument("--qat", action="store_true",
                   help="quantize-aware fine-tuning before conversion, on the training split minus a held-out part; "
                        "the epoch with the best held-out accuracy is kept, and QAT's int8 model is compared with "
                        "PTQ's there: model.tflite is the better one (the other is kept as model_ptq.tflite or "
                        "model_qat.tflite) and the output says which")
    s.add_argument("--qat-epochs", type=positive_int, default=q.qat_epochs)
    s.add_argument("--qat-lr-fraction", type=_fraction, default=q.qat_learning_rate_fraction, metavar="F",
                   help="QAT's first-epoch learning rate as a fraction of the run's (default "
                        f"{q.qat_learning_rate_fraction:g}); a cosine takes it down to the run's last rate")
    s.add_argument("--qat-final-lr-fraction", type=_fraction, default=q.qat_final_learning_rate_fraction,
                   metavar="F", help="QAT's last-epoch learning rate as a fraction of the run's (default: the run's "
                                     "own final rate)")
    s.add_argument("--qat-holdout", type=_holdout_fraction, default=q.qat_holdout_fraction, metavar="F",
                   help="part of the training split QAT sets aside to choose its epoch and to be compared with PTQ "
                        f"(stratified by scene, drawn by --seed; default {q.qat_holdout_fraction:g})")
    s.add_argument("--qat-always", action="store_true",
                   help="model.tflite is the QAT model even where PTQ scored better on the held-out clips (the "
                        "comparison is still reported)")
    d = tflite_export.CompressionConfig()
    s.add_argument("--compress", action="store_true",
                   help="cluster the weights (tensorflow-model-optimization), fine-tune, and store them as TFLM "
                        "look-up-table indices decoded at run time; refused unless they decode exactly")
    s.add_argument("--compress-bits", type=int, choices=range(1, 8), default=d.bits, metavar="B",
                   help=f"index bits: 2**B values per table (default {d.bits})")
    s.add_argument("--compress-granularity", choices=tflite_export.GRANULARITIES, default=d.granularity,
                   help="one value table (and int8 scale) per weight tensor, or per output channel "
                        f"(default {d.granularity}: 4-bit ResNet11 on the demo data took 59,792 bytes per tensor, "
                        "101,072 per channel)")
    s.add_argument("--compress-epochs", type=non_negative_int, default=d.finetune_epochs,
                   help="fine-tuning epochs of the clustered model (default: as many as the run was trained for)")
    s.add_argument("--out", default=None, help="export folder (default RUN_DIR/export)")
    s.add_argument("--arena-targets", type=_targets_or_none, default=firmware_harness.DEFAULT_TARGETS,
                   help="firmware builds whose arena need sizes the header's kTensorArenaSize, besides TFLM "
                        f"Python's (default: {','.join(firmware_harness.DEFAULT_TARGETS)}, those whose toolchain is "
                        "installed); 'none' for TFLM Python's only")
    s.add_argument("--third-party", default=None, help="folder of the pinned TFLM source archives")
    add_workers_arg(s)
    s.set_defaults(func=run)


def _warn_ignored(a: argparse.Namespace) -> None:
    """Options another option overrides or that have no effect, named; --qat with --compress refused."""
    d = tflite_export.CompressionConfig()
    if a.qat and a.compress:
        raise OptionError("--qat and --compress cannot be combined: compression fine-tunes the clustered model "
                          "itself; choose one")
    if not a.compress:
        for option, value, default in (("--compress-bits", a.compress_bits, d.bits),
                                       ("--compress-granularity", a.compress_granularity, d.granularity),
                                       ("--compress-epochs", a.compress_epochs, d.finetune_epochs)):
            if value != default:
                warn(f"{option} {value} has no effect without --compress")
    if not a.qat:
        q = tflite_export.ExportConfig()
        for option, value, default in (("--qat-epochs", a.qat_epochs, q.qat_epochs),
                                       ("--qat-lr-fraction", a.qat_lr_fraction, q.qat_learning_rate_fraction),
                                       ("--qat-final-lr-fraction", a.qat_final_lr_fraction,
                                        q.qat_final_learning_rate_fraction),
                                       ("--qat-holdout", a.qat_holdout, q.qat_holdout_fraction),
                                       ("--qat-always", a.qat_always, q.qat_choose_better is False)):
            if value != default:
                warn(f"{option}{'' if value is True else f' {value}'} has no effect without --qat")
    if a.target is not None:
        t = tflite_export.list_mcus()[a.target]
        flash = t.flash_bytes - tflite_export.FLASH_BESIDES_MODEL_ESTIMATE
        if a.budget != tflite_export.DEFAULT_BUDGET and flash < a.budget:
            warn(f"--budget {a.budget} is lowered by --target {a.target} to {flash:,d} "
                 "(its flash minus the runtime estimate)")
        if a.ram_budget is not None and a.ram_budget > t.largest_sram_bytes:
            warn(f"--ram-budget {a.ram_budget} is lowered by --target {a.target} to its largest SRAM block "
                 f"{t.largest_sram_bytes:,d}")


def run(a: argparse.Namespace) -> None:
    _warn_ignored(a)
    compression = (tflite_export.CompressionConfig(bits=a.compress_bits, granularity=a.compress_granularity,
                                                   finetune_epochs=a.compress_epochs) if a.compress else None)
    probes = firmware_harness.arena_probes(a.arena_targets,
                                           third_party_dir=Path(a.third_party) if a.third_party else None)
    out = Path(a.out) if a.out else Path(a.run_dir) / "export"
    exp = tflite_export.export_model(run_dir=Path(a.run_dir), data_dir=Path(a.data), work_dir=Path(a.work),
                                     config=tflite_export.ExportConfig(
        budget=a.budget, calibration_size=a.calibration_size, seed=a.seed, qat=a.qat,
        qat_epochs=a.qat_epochs, qat_learning_rate_fraction=a.qat_lr_fraction,
        qat_final_learning_rate_fraction=a.qat_final_lr_fraction, qat_holdout_fraction=a.qat_holdout,
        qat_choose_better=not a.qat_always, workers=a.workers, arena_probes=probes, ram_budget=a.ram_budget,
        mcu_target=a.target, compression=compression, export_dir=out,
        dcase_year=None if a.dcase_year == "none" else a.dcase_year))
    size = exp.size
    print(f"flatbuffer: {size.flatbuffer_bytes:,d} bytes of {size.budget_bytes:,d} budget "
          f"({size.budget_used_percent} %); tensor arena {size.arena_min_bytes:,d} bytes measured at most, "
          f"{size.arena_recommended_bytes:,d} in model_settings.h; {size.macs_per_inference:,d} MACs")
    if size.dcase is not None:
        print(size.dcase.describe())
    budget = f" of {exp.ram.budget_bytes:,d} budget" if exp.ram.budget_bytes is not None else ""
    print(f"firmware RAM about {exp.ram.needed_bytes:,d} bytes{budget}; fits: "
          + ", ".join(f"{f.target} {'yes' if f.fits else 'no'}" for f in exp.fits))
    if exp.compression is not None:
        c = exp.compression
        print(f"compression: {c.config.describe()}: {c.uncompressed_bytes:,d} -> {c.compressed_bytes:,d} bytes; "
              f"{len(c.tensors)} tensors decode to the uncompressed weights, TFLM outputs identical on "
              f"{c.checked_inputs} calibration inputs")
    if exp.qat is not None:  # the comparison again, at the end where it is read
        if exp.qat.better == "qat":
            print(f"qat: {exp.qat.describe()}")
        else:
            warn(exp.qat.describe())
    print(f"export: wrote {out} ({exp.quantization_path}; size_report.txt has "
          "the per-tensor table, the activation peak and the fit table)")
