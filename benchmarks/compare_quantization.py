"""Float vs post-training quantization vs quantization-aware training, side by side.

    .venv/bin/python benchmarks/compare_quantization.py RUN_DIR --data DIR [--work work] [--qat-epochs 3]

Copies RUN_DIR twice (RUN_DIR-ptq, RUN_DIR-qat beside it), exports each path, validates each
with TFLM and prints accuracy overall and per device for float, PTQ int8 and QAT int8.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import keras_asc.tf_setup  # noqa: E402,F401  (tf_keras, never Keras 3; before TensorFlow)


def main() -> None:
    import pandas as pd

    from firmware_harness.validate import validate_export
    from tflite_export.export import export_run

    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=Path("work"))
    ap.add_argument("--qat-epochs", type=int, default=3)
    a = ap.parse_args()
    cols = {}
    for path in ("ptq", "qat"):
        run = a.run_dir.with_name(f"{a.run_dir.name}-{path}")
        if not run.exists():
            shutil.copytree(a.run_dir, run, ignore=shutil.ignore_patterns("export"))
        exp = export_run(run, a.data, a.work, qat=path == "qat", qat_epochs=a.qat_epochs)
        rep = validate_export(run / "export" / "model.tflite", a.data, a.work)
        rows = [s for s in rep.scores if s.group in ("overall", "device")]
        names = [s.name for s in rows]
        cols.setdefault("clips", pd.Series([s.clips for s in rows], index=names))
        cols.setdefault("float", pd.Series([100 * s.float_accuracy for s in rows], index=names))
        cols[f"int8 {path} (TFLM)"] = pd.Series([100 * s.int8_accuracy for s in rows], index=names)
        print(f"{path}: {exp.size.flatbuffer_bytes:,d} bytes, conversion {exp.convert_seconds} s, "
              f"QAT fine-tuning {exp.qat_seconds} s")
    print(pd.DataFrame(cols).round(1).to_string())


if __name__ == "__main__":
    main()
