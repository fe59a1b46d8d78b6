"""Full-integer post-training quantization of a tf_keras model.

:func:`keras_asc.dataset.stratified_sample` draws the representative dataset: stratified over (scene, device)
of the training split, deterministic by seed, never "the first N rows".
:func:`convert_int8` converts with int8 per-channel weights, int8 activations, int8 input and
output, batch 1, builtin int8 ops only; the converter itself refuses ops without an int8
kernel, and :func:`tflite_export.flatbuffer.check_int8_model` then checks the result against
what TFLM runs.
"""
from __future__ import annotations

from typing import Callable, Iterable

import keras_asc.tf_setup  # noqa: E402,F401  (tf_keras, never Keras 3; before TensorFlow)

import numpy as np  # noqa: E402

from keras_asc.errors import AscError


class ConversionError(AscError, RuntimeError):
    """The converter refused the model (an op without an int8 builtin kernel, ...)."""


def representative_dataset(x: np.ndarray) -> Callable[[], Iterable[list[np.ndarray]]]:
    """The converter's calibration generator: one ``(1, H, W, 1)`` float32 example at a time."""
    def gen():
        for i in range(len(x)):
            yield [np.asarray(x[i:i + 1], np.float32)]
    return gen


def variables_holder(model):
    """A ``tf.Module`` tracking exactly ``model``'s variables: what the converter needs to save
    the concrete function. Handing it the Keras model instead makes the converter serialize every
    layer's call functions too (about 3 s of a 4 s conversion of the tiny ResNet11), for the same
    flatbuffer bytes (``test_conversion_bytes_do_not_depend_on_the_holder`` in
    ``tests/tflite_export/test_calibration_and_input.py``)."""
    import tensorflow as tf  # heavy: TensorFlow takes seconds to import

    holder = tf.Module()
    holder.model_variables = list(model.variables)
    return holder


def convert_int8(model, calibration_x: np.ndarray, *, per_channel_weights: bool = True) -> bytes:
    """Convert ``model`` (float input ``(batch, H, W, 1)``) to a full-integer flatbuffer.

    Batch is fixed at 1 through the concrete function's input signature. Weights are quantized
    per output channel, or with one scale per tensor when ``per_channel_weights`` is false (a
    clustered model for one LUT table per tensor, :mod:`tflite_export.compression`). Raises
    :class:`ConversionError` with the converter's reason if any op has no int8 builtin kernel.
    """
    import tensorflow as tf  # heavy: TensorFlow takes seconds to import

    shape = [1, *model.input_shape[1:]]
    fn = tf.function(lambda t: model(t, training=False))
    concrete = fn.get_concrete_function(tf.TensorSpec(shape, tf.float32, name="logmel"))
    conv = tf.lite.TFLiteConverter.from_concrete_functions([concrete], variables_holder(model))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative_dataset(calibration_x)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    conv._experimental_disable_per_channel = not per_channel_weights  # the converter's only switch for it
    try:
        return bytes(conv.convert())
    except Exception as e:  # ConverterError and friends; keep the converter's own explanation
        msg = str(e).strip().splitlines()
        detail = "\n".join(line for line in msg if "op" in line.lower() or "error" in line.lower())[:2000]
        raise ConversionError("the int8 converter refused the model: an op has no int8 builtin "
                              f"kernel or cannot be quantized.\n{detail or msg[-1] if msg else e}") from e
