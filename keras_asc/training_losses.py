"""The loss a model trains with (:func:`make_loss`: cross-entropy or focal, with or without
distillation) and how it is compiled (:func:`compile_model`: optimizer, loss, metrics)."""
from __future__ import annotations

import keras_asc.tf_setup  # noqa: F401  (tf_keras, never Keras 3; before TensorFlow)

from keras_asc.dataset import SCENE_LABELS
from keras_asc.distill import kd_loss, student_logits
from keras_asc.training_config import TrainConfig


def _focal(y_true, p, gamma: float, tf):
    """Multi-class focal loss (Lin et al. 2017): CE weighted by (1 - p)^gamma; ``p`` probabilities."""
    p = tf.clip_by_value(p, 1e-7, 1.0)
    return tf.reduce_sum(-y_true * tf.pow(1.0 - p, gamma) * tf.math.log(p), axis=-1)


def make_loss(config: TrainConfig, n_classes: int = len(SCENE_LABELS)):
    """The training loss on the model's probabilities. With teachers it takes targets
    ``(batch, 2 * n_classes)`` (labels, then teacher logits; :mod:`keras_asc.distill`'s loss) and
    targets of ``n_classes`` columns (validation) with the label loss alone."""
    import tensorflow as tf  # TensorFlow takes seconds to import: only when training
    import tf_keras as keras

    gamma = config.focal_gamma
    if not config.teachers:
        if config.loss == "ce":
            return keras.losses.CategoricalCrossentropy()

        def focal_loss(y_true, y_pred):
            return _focal(y_true, y_pred, gamma, tf)

        return focal_loss

    def label_loss(labels, logits):
        if config.loss == "ce":
            return tf.nn.softmax_cross_entropy_with_logits(labels, logits)
        return _focal(labels, tf.nn.softmax(logits), gamma, tf)

    def distillation_loss(y_true, y_pred):
        z = student_logits(y_pred)
        if y_true.shape[-1] == n_classes:  # validation: labels only
            return label_loss(y_true, z)
        return kd_loss(y_true[:, :n_classes], y_true[:, n_classes:], z, weight=config.kd_weight,
                       temperature=config.kd_temperature, label_loss=label_loss)

    return distillation_loss


def compile_model(model, config: TrainConfig) -> None:
    """Adam at the configured rate, the configured loss, accuracy and log-loss metrics (on the label
    columns of the targets: with teachers the training targets also hold their logits)."""
    import tf_keras as keras  # TensorFlow takes seconds to import: only when compiling a model

    # a subclassed model that was never called (compression's fine-tuning wrapper) has no output
    # shape yet; its outputs are the scene classes like every registered model's
    n = model.output_shape[-1] if model.built and getattr(model, "outputs", None) else len(SCENE_LABELS)
    if config.teachers:
        def label_accuracy(y_true, y_pred):
            return keras.metrics.categorical_accuracy(y_true[:, :n], y_pred)

        def label_log_loss(y_true, y_pred):
            return keras.losses.categorical_crossentropy(y_true[:, :n], y_pred)

        metrics = [keras.metrics.MeanMetricWrapper(label_accuracy, name="accuracy"),
                   keras.metrics.MeanMetricWrapper(label_log_loss, name="log_loss")]
    else:
        metrics = [keras.metrics.CategoricalAccuracy(name="accuracy"),
                   keras.metrics.CategoricalCrossentropy(name="log_loss")]
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=make_loss(config, n), metrics=metrics)
