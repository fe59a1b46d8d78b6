"""Flatbuffer bytes and conversion time of the seed's ResNet11 at its three input shapes.

    .venv/bin/python benchmarks/bench_export_sizes.py

Weights are untrained (sizes do not depend on training); calibration uses 32 random inputs.
Also prints the measured TFLM arena for each shape.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import keras_asc.tf_setup  # noqa: E402,F401  (tf_keras, never Keras 3; before TensorFlow)


def main() -> None:
    import numpy as np

    from keras_asc.models import build_model, count_macs, trainable_params
    from tflite_export.arena import measure_arena
    from tflite_export.convert import convert_int8
    from tflite_export.flatbuffer import check_int8_model, read_model

    for shape in ((128, 288), (256, 288), (128, 431)):
        model = build_model("resnet11", (*shape, 1))
        calib = np.random.default_rng(0).standard_normal((32, *shape, 1)).astype(np.float32)
        t = time.perf_counter()
        data = convert_int8(model, calib)
        seconds = time.perf_counter() - t
        check_int8_model(read_model(data))
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "m.tflite").write_bytes(data)
            arena = measure_arena(Path(d) / "m.tflite").min_bytes
        print(f"resnet11 {shape[0]} x {shape[1]}: {len(data):,d} bytes "
              f"({'within' if len(data) <= 131072 else 'OVER'} 131,072), conversion {seconds:.1f} s, "
              f"arena {arena:,d} bytes, {trainable_params(model):,d} params, {count_macs(model) / 1e6:.1f} M MACs")


if __name__ == "__main__":
    main()
