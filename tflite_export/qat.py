"""Quantization-aware fine-tuning with tensorflow-model-optimization (tf_keras only), and its
comparison with post-training quantization (PTQ).

The trained float model is wrapped with ``tfmot.quantization.keras.quantize_model`` (fake int8
quantization of weights and activations in training) and fine-tuned on the run's training split
*minus a held-out part* (:func:`keras_asc.finetune.holdout_split`: stratified by scene, drawn by
the export's seed; never the evaluate split), on the same pipeline as training (without mixup).

- **Activation ranges** (:func:`initialize_activation_ranges`): tfmot starts every activation range
  at [-6, 6] and moves it towards each batch's by a moving average of decay 0.999 per step; the
  demo's 3 epochs are 15 steps, which leave the ranges at about [-6, 6] (the demo's activations
  reach 8 to 23), so the converted int8 model clipped them and QAT lost to PTQ whatever the
  learning rate (measured: docs/benchmarks.md, "Compression"). The ranges start at the
  calibration inputs' minimum and maximum instead, as PTQ's do.
- **Learning rate** (:func:`qat_learning_rates`): the first epoch at a small fraction of the run's
  rate (``ExportConfig.qat_learning_rate_fraction``, 1 %), then a cosine down to the rate the run
  ended at. The float model has converged at the end of its own cosine schedule; a QAT step much
  larger than its last steps throws it out of that minimum faster than three epochs bring it back
  (measured: docs/benchmarks.md, "Compression"). NVIDIA's QAT recipe (Wu et al. 2020, "Integer
  Quantization for Deep Learning Inference", arXiv:2004.09602, section 5.2) starts fine-tuning at
  1 % of the initial training rate with cosine annealing, for the same reason (and so does the
  user guide of NVIDIA's pytorch-quantization toolkit: "starting at 1% of the initial training
  learning rate, and a cosine annealing learning rate schedule").
- **Epoch kept** (:func:`best_epoch`): the one whose fake-quantized model has the highest accuracy
  on the held-out clips (ties: the lower log loss), not the last.
- **Against PTQ** (:func:`choose_model`): the export converts both models and scores both int8
  flatbuffers with TFLM on the held-out clips (:class:`QatRecord`). When QAT's accuracy is below
  PTQ's the export's ``model.tflite`` is the PTQ model and the QAT model is kept beside it as
  ``model_qat.tflite`` (``qat_choose_better=False``, ``--qat-always``: the QAT model, and
  ``model_ptq.tflite`` beside it); either way the output and ``config.json`` say which is better.

Models with layers tfmot cannot wrap (e.g. the Lambda layers of CBAM) are refused with tfmot's reason.
"""
from __future__ import annotations

import dataclasses

import numpy as np

import keras_asc.tf_setup  # noqa: E402,F401  (tf_keras, never Keras 3; before TensorFlow)

from keras_asc.finetune import HoldoutSplit, compile_for_training, finetune_batches, finetune_config, holdout_data
from keras_asc.training_config import TrainConfig
from tflite_export.convert import ConversionError

#: the quantization paths a QAT export compares
QAT, PTQ = "qat", "ptq"


def other_model_file(path: str) -> str:
    """The file name under which a QAT export keeps the model of ``path`` it did not choose."""
    return f"model_{path}.tflite"


@dataclasses.dataclass(frozen=True)
class QatScore:
    """One int8 flatbuffer scored with TFLM on the held-out clips (clip decisions, as the firmware's)."""

    accuracy: float
    log_loss: float


@dataclasses.dataclass(frozen=True)
class QatRecord:
    """What ``asc export --qat`` did and found (config.json's ``qat``)."""

    epochs: int
    learning_rates: tuple[float, ...]  # per epoch
    holdout_fraction: float
    holdout_clips: int  # training clips set aside (not trained on in QAT)
    fit_clips: int  # training clips QAT trained on
    best_epoch: int  # 1-based: the epoch kept
    # per epoch: the fake-quantized model's (accuracy, log loss) on the held-out inputs (windows when windowed)
    epoch_holdout_scores: tuple[tuple[float, float], ...]
    qat: QatScore  # the kept epoch's int8 model, TFLM, on the held-out clips
    ptq: QatScore  # the run's model quantized after training, the same way
    chosen: str  # QAT or PTQ: the model in model.tflite
    better: str  # QAT or PTQ: the higher held-out accuracy (QAT on a tie)
    other_model: str  # the file holding the model not chosen

    def describe(self) -> str:
        """The comparison in one paragraph, naming the better artifact."""
        scores = (f"int8 (TFLM) accuracy on the {self.holdout_clips} held-out training clips: QAT "
                  f"{100 * self.qat.accuracy:.1f} % (epoch {self.best_epoch} of {self.epochs}), PTQ "
                  f"{100 * self.ptq.accuracy:.1f} %")
        if self.better == QAT:
            return (f"QAT is at least as good as PTQ: {scores}. model.tflite is the QAT model; the PTQ model "
                    f"is {self.other_model}")
        if self.chosen == PTQ:
            return (f"QAT did not reach PTQ: {scores}. The better artifact is the PTQ model: model.tflite is the "
                    f"PTQ model (and the C sources are made from it); the QAT model is kept as {self.other_model}")
        return (f"QAT did not reach PTQ: {scores}. model.tflite is the QAT model, as --qat-always asked; the "
                f"better artifact is the PTQ model, {self.other_model} (`asc export` without --qat makes its C sources)")


def choose_model(*, qat: QatScore, ptq: QatScore, choose_better: bool) -> tuple[str, str]:
    """(the better path, the path ``model.tflite`` gets): QAT unless its held-out accuracy is below
    PTQ's; with ``choose_better=False`` always QAT."""
    better = QAT if qat.accuracy >= ptq.accuracy else PTQ
    return better, (better if choose_better else QAT)


def qat_learning_rates(train_config: TrainConfig, *, epochs: int, fraction: float,
                       final_fraction: float | None) -> tuple[float, ...]:
    """QAT's learning rate per epoch: ``fraction`` x the run's rate first, then a cosine (the run's
    own :meth:`~keras_asc.training_config.TrainConfig.learning_rate_at`) to ``final_fraction`` x the
    run's rate at the last epoch (None: the run's ``min_learning_rate``, never above the first)."""
    start = fraction * train_config.learning_rate
    end = min(start, train_config.min_learning_rate if final_fraction is None
              else final_fraction * train_config.learning_rate)
    schedule = dataclasses.replace(train_config, epochs=epochs, learning_rate=start, min_learning_rate=end)
    return tuple(schedule.learning_rate_at(e) for e in range(epochs))


def best_epoch(scores: list[tuple[float, float]] | tuple[tuple[float, float], ...]) -> int:
    """The 1-based epoch with the highest accuracy, then the lowest log loss, then the earliest;
    ``scores``: per epoch (accuracy, log loss)."""
    if not scores:
        raise ValueError("no epoch to choose from")
    return 1 + min(range(len(scores)), key=lambda i: (-scores[i][0], scores[i][1], i))


#: what one training step keeps of a moving-average range (tfmot's MovingAverageQuantizer passes
#: ema_decay=0.999 to quant_ops.MovingAvgQuantize; not configurable)
TFMOT_RANGE_EMA_DECAY = 0.999
#: passes over the calibration inputs: the second sees the first's ranges upstream
RANGE_INIT_PASSES = 2


def _moving_average_ranges(q_model) -> list[dict]:
    """The ``{"min_var", "max_var"}`` of every quantizer of ``q_model`` (tfmot-wrapped) that tfmot
    updates by a moving average: the activation and output ranges (weights' ranges follow the weights)."""
    from tensorflow_model_optimization.python.core.quantization.keras.quantizers import (  # heavy: loads TensorFlow
        MovingAverageQuantizer)

    found = []
    for layer in q_model.layers:
        pairs = []
        if hasattr(layer, "quantizer_vars"):  # QuantizeLayer: the model's input
            pairs.append((layer.quantizer, layer.quantizer_vars))
        if getattr(layer, "_output_quantizers", None):  # QuantizeWrapper's output
            pairs.append((layer._output_quantizers[0], layer._output_quantizer_vars))
        for activation in getattr(layer, "_quantize_activations", ()):  # and its activation's
            pairs += [(activation.quantizer, getattr(activation, name))
                      for name in ("_pre_activation_vars", "_post_activation_vars") if hasattr(activation, name)]
        found += [v for q, v in pairs if isinstance(q, MovingAverageQuantizer)]
    return found


def initialize_activation_ranges(q_model, inputs, *, batch_size: int) -> int:
    """Set every moving-average range of ``q_model`` to the minimum and maximum (with 0 inside) its
    tensor takes on ``inputs`` ``(n, n_mels, frames, 1)`` float32, as PTQ's calibration measures them;
    BatchNormalization in inference mode, nothing else changed. Returns the ranges set.

    tfmot keeps no batch range, but one training-mode step moves a range ``r`` to
    ``decay * r + (1 - decay) * batch range``; the batch range is recovered from that and ``r`` put back."""
    import tf_keras as keras  # heavy: loads TensorFlow

    ranges = _moving_average_ranges(q_model)
    norms = [layer for wrapper in q_model.layers for layer in (getattr(wrapper, "layer", wrapper),)
             if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable]
    for layer in norms:
        layer.trainable = False  # inference mode: the moving statistics are used and kept
    saved = q_model.get_weights()
    try:
        for _ in range(RANGE_INIT_PASSES):
            low = [np.inf] * len(ranges)
            high = [-np.inf] * len(ranges)
            start = [(v["min_var"].numpy(), v["max_var"].numpy()) for v in ranges]
            for i in range(0, len(inputs), batch_size):
                q_model(inputs[i:i + batch_size], training=True)
                for k, v in enumerate(ranges):
                    (lo0, hi0), decay = start[k], TFMOT_RANGE_EMA_DECAY
                    low[k] = min(low[k], float(np.min((v["min_var"].numpy() - decay * lo0) / (1 - decay))))
                    high[k] = max(high[k], float(np.max((v["max_var"].numpy() - decay * hi0) / (1 - decay))))
                    v["min_var"].assign(lo0)
                    v["max_var"].assign(hi0)
            for k, v in enumerate(ranges):
                v["min_var"].assign(np.full(v["min_var"].shape, min(low[k], 0.0), np.float32))
                v["max_var"].assign(np.full(v["max_var"].shape, max(high[k], 0.0), np.float32))
    finally:
        for layer in norms:
            layer.trainable = True
    kept = {id(v) for r in ranges for v in r.values()}
    q_model.set_weights([w if id(var) not in kept else var.numpy() for w, var in zip(saved, q_model.weights)])
    return len(ranges)


@dataclasses.dataclass(frozen=True)
class QatFinetune:
    """The fine-tuned model (its kept epoch's weights) and how it was chosen."""

    model: object  # the tfmot-wrapped tf_keras model
    learning_rates: tuple[float, ...]
    epoch_scores: tuple[tuple[float, float], ...]  # per epoch (held-out accuracy, log loss), fake-quantized
    best_epoch: int


def quantize_aware_finetune(model, fs, normalization, *, train_config: TrainConfig, n_classes: int, epochs: int,
                            holdout: HoldoutSplit, learning_rates: tuple[float, ...], seed: int,
                            calibration_inputs, callbacks: tuple = (), log=print) -> QatFinetune:
    """Wrap ``model`` with tfmot's fake quantization, start its activation ranges on
    ``calibration_inputs`` ``(n, n_mels, frames, 1)`` float32 (:func:`initialize_activation_ranges`;
    None: tfmot's [-6, 6]) and fine-tune it for ``epochs`` on ``holdout.fit_rows``
    of ``fs``'s train split at ``learning_rates`` (one per epoch); keep the epoch :func:`best_epoch`
    picks on ``holdout.holdout_rows``. ``callbacks``: extra tf_keras callbacks (tests)."""
    import tensorflow_model_optimization as tfmot  # heavy: loads TensorFlow
    import tf_keras as keras  # heavy: loads TensorFlow

    if len(learning_rates) != epochs:
        raise ValueError(f"{len(learning_rates)} learning rates for {epochs} epochs")
    try:
        q_model = tfmot.quantization.keras.quantize_model(model)
    except (ValueError, RuntimeError) as e:
        raise ConversionError(f"quantize-aware training cannot wrap this model: {e}") from e
    ft_cfg = dataclasses.replace(finetune_config(train_config, seed=seed), learning_rate=learning_rates[0])
    keras.utils.set_random_seed(seed)
    if calibration_inputs is not None:
        n = initialize_activation_ranges(q_model, calibration_inputs, batch_size=ft_cfg.batch_size)
        log(f"export: {n} activation ranges set on {len(calibration_inputs)} calibration inputs")
    compile_for_training(q_model, ft_cfg)
    batches = finetune_batches(fs, normalization=normalization, config=ft_cfg, n_classes=n_classes,
                               rows=holdout.fit_rows)
    held = holdout_data(fs, rows=holdout.holdout_rows, normalization=normalization, config=ft_cfg, n_classes=n_classes)
    scores: list[tuple[float, float]] = []
    kept = {}

    class KeepBest(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            scores.append((float(logs["val_accuracy"]), float(logs["val_log_loss"])))
            if best_epoch(scores) == epoch + 1:
                kept["weights"] = q_model.get_weights()

    log(f"export: quantize-aware fine-tuning for {epochs} epoch(s) on {len(holdout.fit_rows)} training clips, "
        f"learning rate {learning_rates[0]:.3g} -> {learning_rates[-1]:.3g} (cosine); keeping the epoch with the "
        f"best accuracy on {len(holdout.holdout_rows)} held-out training clips")
    schedule = keras.callbacks.LearningRateScheduler(lambda epoch, _lr: learning_rates[epoch])
    q_model.fit(batches, epochs=epochs, verbose=2, validation_data=held,
                callbacks=[schedule, *callbacks, KeepBest()])
    q_model.set_weights(kept["weights"])
    chosen = best_epoch(scores)
    log(f"export: kept QAT epoch {chosen} of {epochs} (held-out accuracy {100 * scores[chosen - 1][0]:.1f} %, "
        f"log loss {scores[chosen - 1][1]:.4f})")
    return QatFinetune(model=q_model, learning_rates=tuple(learning_rates), epoch_scores=tuple(scores),
                       best_epoch=chosen)
