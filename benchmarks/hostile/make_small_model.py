"""Write a small valid int8 .tflite (conv, mean, fully connected, softmax; about 2.3 KB): the kind
of bring-your-own model issue 28 saw refused. Run as a script (TensorFlow is only loaded here):

    python benchmarks/hostile/make_small_model.py OUT.tflite
"""
from __future__ import annotations

import sys
from pathlib import Path

INPUT_SHAPE = (16, 16, 1)  # (height, width, channels) of the float input
CLASSES = 3
FILTERS = 4
CALIBRATION_INPUTS = 50


def make_small_model(out: Path) -> None:
    """Build, calibrate on seeded normal inputs and convert a fully int8 model (int8 in and out)."""
    import numpy as np  # heavy: this script runs in a child process of the hostile-input script
    import tensorflow as tf
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Input(INPUT_SHAPE), keras.layers.Conv2D(FILTERS, 3, activation="relu"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(CLASSES),
                              keras.layers.Softmax()])
    rng = np.random.default_rng(0)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: (
        [rng.standard_normal((1, *INPUT_SHAPE)).astype(np.float32)] for _ in range(CALIBRATION_INPUTS))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    Path(out).write_bytes(converter.convert())


if __name__ == "__main__":
    make_small_model(Path(sys.argv[1]))
