"""Quantize-aware training (tflite_export.qat): the held-out split, the learning-rate schedule, the
epoch kept, and the comparison with PTQ that names the better artifact."""
import dataclasses
import math
import shutil

import numpy as np
import pytest

from keras_asc import artifacts
from keras_asc.finetune import holdout_split
from keras_asc.training_config import TrainConfig
from tflite_export.qat import (PTQ, QAT, QatRecord, QatScore, best_epoch, choose_model, other_model_file,
                               qat_learning_rates)

QUIET = dict(log=lambda *_: None)
LABELS = np.repeat(np.arange(10), [18, 18, 18, 17, 18, 18, 18, 19, 18, 18])  # a training split's scenes


# ----------------------------------------------------------------------------- held-out split
def test_holdout_split_is_disjoint_and_covers_the_training_split():
    split = holdout_split(LABELS, fraction=0.2, seed=0)
    assert len(np.intersect1d(split.fit_rows, split.holdout_rows)) == 0
    assert sorted([*split.fit_rows, *split.holdout_rows]) == list(range(len(LABELS)))


def test_holdout_split_is_the_same_for_the_same_seed_and_not_for_another():
    a, b = holdout_split(LABELS, fraction=0.2, seed=3), holdout_split(LABELS, fraction=0.2, seed=3)
    other = holdout_split(LABELS, fraction=0.2, seed=4)
    assert np.array_equal(a.holdout_rows, b.holdout_rows) and np.array_equal(a.fit_rows, b.fit_rows)
    assert not np.array_equal(a.holdout_rows, other.holdout_rows)


def test_holdout_split_takes_the_fraction_of_every_scene():
    split = holdout_split(LABELS, fraction=0.2, seed=0)
    for scene in np.unique(LABELS):
        clips = int(np.sum(LABELS == scene))
        assert np.sum(LABELS[split.holdout_rows] == scene) == max(1, round(0.2 * clips))


def test_holdout_split_does_not_depend_on_the_order_of_other_scenes():
    """Drawn per scene in label order: a scene's held-out clips are the same wherever the other scenes' rows are."""
    rank = np.concatenate([np.arange(np.sum(LABELS == c)) for c in np.unique(LABELS)])  # LABELS is grouped
    order = np.argsort(rank * 100 + LABELS, kind="stable")  # scenes interleaved, each scene's order kept
    shuffled = LABELS[order]
    held_there = order[holdout_split(shuffled, fraction=0.2, seed=1).holdout_rows]  # as rows of LABELS
    assert set(held_there) == set(holdout_split(LABELS, fraction=0.2, seed=1).holdout_rows)


def test_holdout_split_keeps_a_scene_of_one_clip_for_training():
    labels = np.array([0, 0, 0, 0, 1])
    split = holdout_split(labels, fraction=0.5, seed=0)
    assert 4 in split.fit_rows and 4 not in split.holdout_rows


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_holdout_split_refuses_a_fraction_outside_zero_one(fraction):
    with pytest.raises(ValueError, match="held-out fraction"):
        holdout_split(LABELS, fraction=fraction, seed=0)


# ----------------------------------------------------------------------------- learning rate
RUN = TrainConfig(learning_rate=2e-3, min_learning_rate=1e-5, epochs=40)


def test_learning_rate_starts_at_the_fraction_of_the_runs_rate():
    rates = qat_learning_rates(RUN, epochs=5, fraction=0.01, final_fraction=None)
    assert rates[0] == pytest.approx(0.01 * RUN.learning_rate)


def test_learning_rate_ends_at_the_runs_final_rate_by_default():
    rates = qat_learning_rates(RUN, epochs=5, fraction=0.01, final_fraction=None)
    assert rates[-1] == pytest.approx(RUN.min_learning_rate) and len(rates) == 5


def test_learning_rate_follows_a_cosine_in_between():
    first, last = 0.01 * RUN.learning_rate, 0.001 * RUN.learning_rate
    rates = qat_learning_rates(RUN, epochs=5, fraction=0.01, final_fraction=0.001)
    for epoch, rate in enumerate(rates):
        assert rate == pytest.approx(last + 0.5 * (first - last) * (1 + math.cos(math.pi * epoch / 4)))


def test_learning_rate_is_constant_when_first_and_last_fractions_are_equal():
    assert qat_learning_rates(RUN, epochs=3, fraction=0.1, final_fraction=0.1) == pytest.approx((0.1 * 2e-3,) * 3)


def test_learning_rate_never_rises_when_the_runs_final_rate_is_above_the_first():
    rates = qat_learning_rates(dataclasses.replace(RUN, min_learning_rate=1e-4), epochs=3, fraction=0.01,
                               final_fraction=None)
    assert max(rates) == pytest.approx(0.01 * RUN.learning_rate) and rates == tuple(sorted(rates, reverse=True))


# ----------------------------------------------------------------------------- epoch kept
def test_best_epoch_is_the_highest_accuracy_not_the_last():
    assert best_epoch([(0.80, 0.6), (0.90, 0.5), (0.70, 0.4)]) == 2


def test_best_epoch_breaks_an_accuracy_tie_with_the_log_loss():
    assert best_epoch([(0.90, 0.6), (0.90, 0.4), (0.85, 0.3)]) == 2


def test_best_epoch_breaks_a_full_tie_with_the_earliest():
    assert best_epoch([(0.9, 0.5), (0.9, 0.5)]) == 1


# ----------------------------------------------------------------------------- QAT against PTQ
def _record(*, qat: float, ptq: float, choose_better: bool = True) -> QatRecord:
    better, chosen = choose_model(qat=QatScore(qat, 1.0), ptq=QatScore(ptq, 1.0), choose_better=choose_better)
    return QatRecord(epochs=3, learning_rates=(2e-5, 1.5e-5, 1e-5), holdout_fraction=0.2, holdout_clips=36,
                     fit_clips=144, best_epoch=2, epoch_holdout_scores=((0.9, 0.4), (0.92, 0.3), (0.91, 0.35)),
                     qat=QatScore(qat, 1.0), ptq=QatScore(ptq, 1.0), chosen=chosen, better=better,
                     other_model=other_model_file(PTQ if chosen == QAT else QAT))


def test_qat_is_chosen_on_a_tie():
    assert choose_model(qat=QatScore(0.9, 0.5), ptq=QatScore(0.9, 0.1), choose_better=True) == (QAT, QAT)


def test_ptq_is_chosen_where_qat_loses():
    assert choose_model(qat=QatScore(0.8, 0.5), ptq=QatScore(0.9, 0.5), choose_better=True) == (PTQ, PTQ)


def test_qat_always_keeps_qat_where_it_loses():
    assert choose_model(qat=QatScore(0.8, 0.5), ptq=QatScore(0.9, 0.5), choose_better=False) == (PTQ, QAT)


def test_qat_lost_message_names_the_ptq_model_as_the_better_artifact():
    text = _record(qat=0.80, ptq=0.90).describe()
    assert "QAT did not reach PTQ" in text and "model.tflite is the PTQ model" in text
    assert "model_qat.tflite" in text and "80.0 %" in text and "90.0 %" in text


def test_qat_lost_message_with_qat_always_names_the_ptq_file_as_the_better_artifact():
    text = _record(qat=0.80, ptq=0.90, choose_better=False).describe()
    assert "QAT did not reach PTQ" in text and "the better artifact is the PTQ model, model_ptq.tflite" in text


def test_qat_won_message_says_so_and_names_the_ptq_file():
    text = _record(qat=0.95, ptq=0.90).describe()
    assert "QAT is at least as good as PTQ" in text and "model_ptq.tflite" in text and "did not" not in text


# ----------------------------------------------------------------------------- activation ranges
def _tiny_models():
    """A float Conv-BN-ReLU-Dense model and its tfmot-wrapped copy."""
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.ReLU(name="relu")(keras.layers.BatchNormalization()(x))
    x = keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, x)
    return model, tfmot.quantization.keras.quantize_model(model)


def _relu_range(q_model) -> tuple[float, float]:
    v = q_model.get_layer("quant_relu")._output_quantizer_vars
    return float(v["min_var"].numpy()), float(v["max_var"].numpy())


def test_tfmot_starts_an_activation_range_at_six():
    """The premise of the range initialization: without it a range is tfmot's [-6, 6]."""
    assert _relu_range(_tiny_models()[1]) == (-6.0, 6.0)


def test_activation_ranges_start_at_the_range_the_calibration_inputs_give():
    """The ReLU's range becomes [0, the largest ReLU output on the inputs] (the float model's, up to
    the fake-quantized weights' rounding)."""
    import tf_keras as keras

    from tflite_export.qat import initialize_activation_ranges

    model, q_model = _tiny_models()
    x = np.random.default_rng(0).normal(2.0, 8.0, (40, 8, 8, 1)).astype(np.float32)
    initialize_activation_ranges(q_model, x, batch_size=16)
    relu = keras.Model(model.input, model.get_layer("relu").output)(x).numpy()
    low, high = _relu_range(q_model)
    assert low == 0.0 and high == pytest.approx(float(relu.max()), rel=0.02)


def test_activation_range_initialization_changes_no_weight():
    import tf_keras as keras

    from tflite_export.qat import _moving_average_ranges, initialize_activation_ranges

    q_model = _tiny_models()[1]
    ranges = {id(v) for r in _moving_average_ranges(q_model) for v in r.values()}
    before = {id(v): v.numpy().copy() for v in q_model.weights if id(v) not in ranges}
    initialize_activation_ranges(q_model, np.ones((20, 8, 8, 1), np.float32), batch_size=8)
    assert all(np.array_equal(before[id(v)], v.numpy()) for v in q_model.weights if id(v) in before)
    assert all(layer.trainable for layer in q_model.layers
               if isinstance(getattr(layer, "layer", layer), keras.layers.BatchNormalization))


# ----------------------------------------------------------------------------- with training (slow)
@pytest.mark.slow
def test_the_best_epoch_is_kept_when_the_last_is_worse(tiny_run, tiny_features):
    """The last epoch's weights are zeroed before it is validated: the kept weights are those of the
    best earlier epoch, not the last."""
    import tf_keras as keras

    from keras_asc.run_record import load_run_model, read_run_config
    from tflite_export.qat import quantize_aware_finetune

    run = read_run_config(tiny_run)
    epochs = 3
    ends = {}

    class BreakTheLastEpoch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == epochs - 1:
                for w in self.model.trainable_weights:
                    w.assign(np.zeros(w.shape, w.dtype.as_numpy_dtype))

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_epoch_end(self, epoch, logs=None):
            ends[epoch + 1] = [w.copy() for w in self.model.get_weights()]

    labels = tiny_features.table("train")["label"].to_numpy()
    tuned = quantize_aware_finetune(
        load_run_model(tiny_run, run=run), tiny_features, run.normalization, train_config=run.train,
        n_classes=len(run.labels), epochs=epochs, holdout=holdout_split(labels, fraction=0.2, seed=0),
        learning_rates=(1e-4,) * epochs, seed=0, calibration_inputs=None, callbacks=(BreakTheLastEpoch(),),
        **QUIET)
    assert tuned.best_epoch < epochs and tuned.epoch_scores[-1][0] < tuned.epoch_scores[tuned.best_epoch - 1][0]
    kept = tuned.model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(kept, ends[tuned.best_epoch]))


@pytest.mark.slow
def test_qat_export_writes_the_better_model_and_keeps_the_other(tiny_run, tiny_dataset, tiny_work, tmp_path):
    """End to end: both int8 models are written, model.tflite is the one the record calls chosen, the
    record's choice follows its held-out scores, and the log says which artifact is better."""
    from tflite_export.export import ExportConfig, export_run

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("export"))
    lines = []
    exp = export_run(run, tiny_dataset, tiny_work, config=ExportConfig(qat=True, qat_epochs=2, calibration_size=20),
                     log=lines.append)
    rec, export = exp.qat, run / "export"
    assert rec.better == (QAT if rec.qat.accuracy >= rec.ptq.accuracy else PTQ) and rec.chosen == rec.better
    assert exp.quantization_path == rec.chosen and (export / rec.other_model).is_file()
    assert exp.tflite_sha256 == artifacts.sha256_file(export / "model.tflite")
    assert artifacts.sha256_file(export / rec.other_model) != exp.tflite_sha256
    assert rec.describe() in "\n".join(lines) and rec.describe() in (export / "size_report.txt").read_text()
    assert exp.size.macs_per_inference > 0  # counted on the run's model (tfmot's wrapped layers count none)
    assert rec.holdout_clips + rec.fit_clips == len(tiny_dataset.joinpath("evaluation_setup", "fold1_train.csv")
                                                    .read_text().strip().splitlines()) - 1
