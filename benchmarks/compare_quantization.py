"""PTQ, QAT and LUT-compressed exports of one run, side by side, through every stage.

    .venv/bin/python benchmarks/compare_quantization.py RUN_DIR --data DIR [--work work]
        [--out DIR] [--variants ptq,qat,lut4,lut3] [--clips 10]

Exports each variant into OUT/<variant> (default RUN_DIR-quantization/), validates it with TFLM
on every evaluate clip, builds the firmware for the host and the Cortex-M4 (QEMU, ``--clips``
clips, bit-exactness checked) and prints one Markdown row per variant: flatbuffer bytes, the
Cortex-M4 image's text, the arena, float and int8 accuracy, and QEMU time per inference.
Variants: ``ptq``, ``qat``, ``lut<B>`` (B-bit tables per tensor) and ``lut<B>c`` (per channel).
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import keras_asc.tf_setup  # noqa: E402,F401  (tf_keras, never Keras 3; before TensorFlow)


def export_options(variant: str) -> dict:
    from tflite_export.compression import CompressionConfig

    if variant in ("ptq", "qat"):
        return {"qat": variant == "qat"}
    m = re.fullmatch(r"lut([1-7])(c?)", variant)
    if m is None:
        raise SystemExit(f"unknown variant {variant!r}: ptq, qat, lut<bits> or lut<bits>c")
    return {"compression": CompressionConfig(bits=int(m.group(1)), granularity="channel" if m.group(2) else "tensor")}


def main() -> None:
    from firmware_harness.firmware.check import arena_probes, check_firmware
    from firmware_harness.validation.export_validation import validate_export
    from tflite_export.export import ExportConfig, export_run

    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=Path("work"))
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--variants", default="ptq,qat,lut4,lut3")
    ap.add_argument("--clips", type=int, default=10, help="evaluate clips on the Cortex-M4 under QEMU")
    a = ap.parse_args()
    out = a.out or a.run_dir.with_name(f"{a.run_dir.name}-quantization")
    rows = ["| variant | flatbuffer bytes | Cortex-M4 image text | arena (measured / header) | float acc | "
            "int8 (TFLM) acc | int8 log loss | QEMU ms per inference | firmware bit-exact |",
            "|---|---|---|---|---|---|---|---|---|"]
    for variant in a.variants.split(","):
        export_dir = out / variant
        exp = export_run(a.run_dir, a.data, a.work, config=ExportConfig(export_dir=export_dir, arena_probes=arena_probes(
            ("host", "host-cmsis-nn", "cortex-m4")), **export_options(variant)))
        rep = validate_export(export_dir / "model.tflite", a.data, a.work)
        fw = check_firmware(export_dir, a.data, a.work, targets=("host", "cortex-m4"), clips=a.clips)
        m4 = next(t for t in fw.targets if t.target == "cortex-m4")
        overall = rep.scores[0]
        exact = all(t.bit_identical for t in fw.targets)
        rows.append(
            f"| {variant} | {exp.size.flatbuffer_bytes:,d} | {m4.footprint.text:,d} | {exp.size.arena_min_bytes:,d} / "
            f"{exp.size.arena_recommended_bytes:,d} | {100 * overall.float_accuracy:.1f} % | "
            f"{100 * overall.int8_accuracy:.1f} % | {overall.int8_log_loss:.3f} | {1e3 * m4.seconds_per_inference:.0f} | "
            f"{'yes' if exact else 'NO'} ({', '.join(f'{t.target} {t.outputs_identical}/{t.clips}' for t in fw.targets)}) |")
        print("\n".join(rows), flush=True)
    print(f"\n{len(rows) - 2} variants of {a.run_dir} (exports in {out})")


if __name__ == "__main__":
    main()
