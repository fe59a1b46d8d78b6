"""Quantization-aware fine-tuning with tensorflow-model-optimization (tf_keras only).

The trained float model is wrapped with ``tfmot.quantization.keras.quantize_model`` (fake
int8 quantization of weights and activations in training) and fine-tuned for a few epochs at
a tenth of the run's learning rate, on the same pipeline as training (without mixup), then
converted like a PTQ model. Models with layers tfmot cannot wrap (e.g. the Lambda layers of
CBAM) are refused with tfmot's reason.
"""
from __future__ import annotations

import keras_asc.tf_setup  # noqa: E402,F401  (tf_keras, never Keras 3; before TensorFlow)

from keras_asc.finetune import compile_for_training, finetune_batches, finetune_config
from tflite_export.convert import ConversionError


def quantize_aware_finetune(model, fs, normalization, *, train_config, n_classes: int, epochs: int, seed: int,
                            log=print):
    import tensorflow_model_optimization as tfmot  # heavy: loads TensorFlow
    import tf_keras as keras  # heavy: loads TensorFlow

    try:
        q_model = tfmot.quantization.keras.quantize_model(model)
    except (ValueError, RuntimeError) as e:
        raise ConversionError(f"quantize-aware training cannot wrap this model: {e}") from e
    ft_cfg = finetune_config(train_config, seed=seed)
    keras.utils.set_random_seed(seed)
    compile_for_training(q_model, ft_cfg)
    batches = finetune_batches(fs, normalization=normalization, config=ft_cfg, n_classes=n_classes)
    log(f"export: quantize-aware fine-tuning for {epochs} epoch(s)")
    q_model.fit(batches, epochs=epochs, verbose=2)
    return q_model
