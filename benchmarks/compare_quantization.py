"""PTQ, QAT and LUT-compressed exports of one run or several, side by side, through every stage.

    .venv/bin/python benchmarks/compare_quantization.py RUN_DIR [RUN_DIR ...] --data DIR [--work work]
        [--out DIR] [--variants ptq,qat,lut4,lut3] [--clips 10] [--accuracy-only]

Exports each variant of each run into OUT/<run>/<variant> (default RUN_DIR-quantization/<variant>),
validates it with TFLM on every evaluate clip, builds the firmware for the host and the Cortex-M4
(QEMU, ``--clips`` clips, bit-exactness checked) and prints one Markdown row per variant:
flatbuffer bytes, the Cortex-M4 image's text, the arena, float and int8 accuracy, and QEMU time
per inference. ``--accuracy-only`` skips the arena probes and the firmware (export and validation
only: the accuracy columns).

Variants: ``ptq``, ``qat``, ``lut<B>`` (B-bit tables per tensor) and ``lut<B>c`` (per channel).
``qat`` is ``asc export --qat``'s recipe with ``--qat-always``, so that the QAT model itself is
validated; ``qat-lr<F>`` the same at a constant learning rate of F x the run's (``qat-lr0.1``: the
rate QAT used before 2026-12-07), ``-e<N>`` appended: N epochs. When a run has a ``ptq`` and ``qat``
variant, a second table compares them: PTQ's and QAT's int8 accuracy on the evaluate split, the
held-out comparison ``asc export --qat`` makes (on training clips) and the model it would write
as ``model.tflite``, with that model's evaluate accuracy.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import keras_asc.tf_setup  # noqa: E402,F401  (tf_keras, never Keras 3; before TensorFlow)


def export_options(variant: str) -> dict:
    """The :class:`~tflite_export.export_config.ExportConfig` fields of ``variant`` (see the module doc)."""
    from tflite_export.compression import CompressionConfig

    if variant == "ptq":
        return {}
    m = re.fullmatch(r"qat(?:-lr([0-9.]+))?(?:-e([0-9]+))?", variant)
    if m is not None:
        options = {"qat": True, "qat_choose_better": False}
        if m.group(1):
            options.update(qat_learning_rate_fraction=float(m.group(1)), qat_final_learning_rate_fraction=float(m.group(1)))
        if m.group(2):
            options["qat_epochs"] = int(m.group(2))
        return options
    m = re.fullmatch(r"lut([1-7])(c?)", variant)
    if m is None:
        raise SystemExit(f"unknown variant {variant!r}: ptq, qat[-lr<F>][-e<N>], lut<bits> or lut<bits>c")
    return {"compression": CompressionConfig(bits=int(m.group(1)), granularity="channel" if m.group(2) else "tensor")}


def qat_against_ptq_row(run: str, ptq_int8: float, qat_exp, qat_int8: float) -> str:
    """One row of the QAT-against-PTQ table: evaluate-split int8 accuracies, the export's held-out
    comparison (``qat_exp.qat``), and what ``asc export --qat`` (without --qat-always) would write."""
    rec = qat_exp.qat
    chosen_int8 = qat_int8 if rec.better == "qat" else ptq_int8
    return (f"| {run} | {100 * ptq_int8:.1f} % | {100 * qat_int8:.1f} % | {rec.best_epoch} of {rec.epochs} | "
            f"QAT {100 * rec.qat.accuracy:.1f} % / PTQ {100 * rec.ptq.accuracy:.1f} % ({rec.holdout_clips} clips) | "
            f"{rec.better.upper()} | {100 * chosen_int8:.1f} % |")


def qat_epochs_line(name: str, rec) -> str:
    """A QAT export's epochs: learning rate, and the fake-quantized model's held-out accuracy and log loss."""
    per_epoch = ", ".join(f"{i + 1}: lr {lr:.2g} acc {100 * acc:.1f} % loss {loss:.3f}"
                          for i, (lr, (acc, loss)) in enumerate(zip(rec.learning_rates, rec.epoch_holdout_scores)))
    return f"- {name}: {per_epoch}; kept epoch {rec.best_epoch}"


def main() -> None:
    from firmware_harness.firmware.check import arena_probes, check_firmware
    from firmware_harness.validation.export_validation import validate_export
    from tflite_export.export import ExportConfig, export_run

    ap = argparse.ArgumentParser()
    ap.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR")
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=Path("work"))
    ap.add_argument("--out", type=Path, default=None, help="exports in OUT/<run name>/<variant>")
    ap.add_argument("--variants", default="ptq,qat,lut4,lut3")
    ap.add_argument("--clips", type=int, default=10, help="evaluate clips on the Cortex-M4 under QEMU")
    ap.add_argument("--accuracy-only", action="store_true", help="export and validate only (no firmware)")
    a = ap.parse_args()
    rows = ["| run | variant | flatbuffer bytes | Cortex-M4 image text | arena (measured / header) | float acc | "
            "int8 (TFLM) acc | int8 log loss | QEMU ms per inference | firmware bit-exact |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    qat_rows = ["| run | PTQ int8 acc | QAT int8 acc | QAT epoch kept | held-out int8 acc (training clips) | "
                "better on held-out | `asc export --qat` writes: int8 acc |", "|---|---|---|---|---|---|---|"]
    epochs = []  # per QAT export: its learning rates and held-out scores per epoch
    for run_dir in a.run_dirs:
        out = a.out / run_dir.name if a.out else run_dir.with_name(f"{run_dir.name}-quantization")
        int8, exports = {}, {}
        for variant in a.variants.split(","):
            export_dir = out / variant
            probes = None if a.accuracy_only else arena_probes(("host", "host-cmsis-nn", "cortex-m4"))
            exp = exports[variant] = export_run(run_dir, a.data, a.work, config=ExportConfig(
                export_dir=export_dir, arena_probes=probes, **export_options(variant)))
            overall = validate_export(export_dir / "model.tflite", a.data, a.work).scores[0]
            int8[variant] = overall.int8_accuracy
            image = ms = "-"
            arena = f"{exp.size.arena_min_bytes:,d} / {exp.size.arena_recommended_bytes:,d}"
            exact = "not run (--accuracy-only)"
            if not a.accuracy_only:
                fw = check_firmware(export_dir, a.data, a.work, targets=("host", "cortex-m4"), clips=a.clips)
                m4 = next(t for t in fw.targets if t.target == "cortex-m4")
                image, ms = f"{m4.footprint.text:,d}", f"{1e3 * m4.seconds_per_inference:.0f}"
                exact = (f"{'yes' if all(t.bit_identical for t in fw.targets) else 'NO'} "
                         f"({', '.join(f'{t.target} {t.outputs_identical}/{t.clips}' for t in fw.targets)})")
            rows.append(f"| {run_dir.name} | {variant} | {exp.size.flatbuffer_bytes:,d} | {image} | {arena} | "
                        f"{100 * overall.float_accuracy:.1f} % | {100 * overall.int8_accuracy:.1f} % | "
                        f"{overall.int8_log_loss:.3f} | {ms} | {exact} |")
            print("\n".join(rows), flush=True)
            if exp.qat is not None:
                epochs.append(qat_epochs_line(f"{run_dir.name} {variant}", exp.qat))
                print(epochs[-1], flush=True)
        if "ptq" in int8 and "qat" in int8:
            qat_rows.append(qat_against_ptq_row(run_dir.name, int8["ptq"], exports["qat"], int8["qat"]))
            print("\n".join(qat_rows), flush=True)
    print("\n".join(["", *rows, "", *(qat_rows if len(qat_rows) > 2 else []), "", *epochs]))
    print(f"\n{len(rows) - 2} exports of {len(a.run_dirs)} run(s)")


if __name__ == "__main__":
    main()
