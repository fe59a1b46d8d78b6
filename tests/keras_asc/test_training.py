import numpy as np
import pandas as pd
import pytest

from keras_asc import artifacts
from keras_asc.dataset import SCENE_LABELS
from keras_asc.evaluation import evaluate_run, log_loss, score_table
from keras_asc.run_record import load_run_model
from keras_asc.training import RunExists, train
from keras_asc.training_config import TrainConfig
from keras_asc.training_data import load_split, make_train_pipeline
from keras_asc.training_losses import make_loss
from tests.conftest import TINY_TRAIN

QUIET = dict(log=lambda *_: None)


def test_tiny_run_learns(tiny_run, tiny_features):
    cfg = artifacts.read_json(tiny_run / "config.json")
    assert cfg["status"] == "done" and cfg["labels"][0] == "airport"
    assert cfg["normalization"] == tiny_features.config["normalization"]
    assert cfg["train"]["model_overrides"] == {"width": 0.25} and cfg["git_commit"]
    x, y = load_split(tiny_features, "train")
    probs = load_run_model(tiny_run).predict(x, verbose=0)
    # chance is 10 %: the loop must learn, not just run
    assert np.mean(probs.argmax(1) == y) > 0.4
    hist = pd.read_csv(tiny_run / "history.csv")
    assert len(hist) == TINY_TRAIN["epochs"] and hist["loss"].iloc[-1] < hist["loss"].iloc[0]
    assert (tiny_run / "tensorboard").is_dir() and any((tiny_run / "checkpoints").iterdir())


def test_evaluate_writes_reports(tiny_run, tiny_dataset, tiny_work):
    scores = evaluate_run(tiny_run, tiny_dataset, tiny_work, **QUIET)
    for name in ("metrics.json", "metrics.csv", "predictions.csv", "confusion.png"):
        assert (tiny_run / name).is_file()
    assert set(scores["group"]) == {"overall", "device", "scene"}
    assert scores.loc[scores["name"] == "s5", "unseen_device"].item()
    overall = scores.iloc[0]
    pred = pd.read_csv(tiny_run / "predictions.csv")
    right = (pred[list(SCENE_LABELS)].to_numpy().argmax(1) == pred["scene_label"].map(SCENE_LABELS.index).to_numpy())
    assert overall["clips"] == 80 and overall["accuracy"] == pytest.approx(right.mean())


def test_resume_continues_and_refuses_mismatch(tiny_features, tmp_path):
    run = tmp_path / "run"
    cfg2 = TrainConfig(**{**TINY_TRAIN, "epochs": 2})
    train(tiny_features, run, config=cfg2, **QUIET)
    with pytest.raises(RunExists, match="--resume"):
        train(tiny_features, run, config=cfg2, **QUIET)
    with pytest.raises(RunExists, match="different training options"):
        train(tiny_features, run, config=TrainConfig(**{**TINY_TRAIN, "epochs": 2, "loss": "focal"}),
              resume=True, **QUIET)
    # simulate a run killed after epoch 1 of 3: roll the state back and resume
    state = artifacts.read_json(run / "state.json")
    state.update(epoch=1, history=state["history"][:1])
    artifacts.write_json(run / "state.json", state)
    cfg = artifacts.read_json(run / "config.json")
    cfg["train"]["epochs"] = 3
    artifacts.write_json(run / "config.json", cfg)
    messages = []
    train(tiny_features, run, config=TrainConfig(**{**TINY_TRAIN, "epochs": 3}), resume=True, log=messages.append)
    assert any("resuming" in m for m in messages)
    assert [h["epoch"] for h in artifacts.read_json(run / "state.json")["history"]] == [1, 2, 3]


def test_pipeline_augmentation_and_mixup(tiny_features):
    x, y = load_split(tiny_features, "train")
    cfg = TrainConfig(batch_size=8, mixup_alpha=0.4, device_aug=0.5, seed=3)
    bx, by = next(iter(make_train_pipeline(x, y, config=cfg, n_classes=10)))
    assert bx.shape == (8, *x.shape[1:]) and by.shape == (8, 10)
    np.testing.assert_allclose(by.numpy().sum(1), 1, rtol=1e-5)
    assert (by.numpy().max(1) < 1).any()  # some labels are mixed
    assert np.isfinite(bx.numpy()).all()


def test_focal_loss_by_hand():
    """Lin et al.: -(1 - p_true)^gamma * ln(p_true), summed over classes, per example."""
    loss = make_loss(TrainConfig(loss="focal", focal_gamma=2.0))
    y_true = np.array([[0, 1, 0], [1, 0, 0]], np.float32)
    y_pred = np.array([[0.2, 0.7, 0.1], [0.5, 0.25, 0.25]], np.float32)
    expected = [-(0.3 ** 2) * np.log(0.7), -(0.5 ** 2) * np.log(0.5)]  # 0.032100, 0.173287
    np.testing.assert_allclose(np.asarray(loss(y_true, y_pred)), expected, rtol=1e-5)
    ce = make_loss(TrainConfig(loss="ce"))  # gamma 0 is cross-entropy: the mean of -ln(p_true)
    np.testing.assert_allclose(float(ce(y_true, y_pred)), -np.mean(np.log([0.7, 0.5])), rtol=1e-5)


@pytest.mark.parametrize("loss", ["focal", "ce"])
def test_training_compiles_the_configured_loss(loss):
    """What fit minimizes is the configured loss: Keras' loss of a compiled model on a batch equals
    the hand-computed focal loss (gamma 2) or cross-entropy of its probabilities."""
    import tf_keras as keras

    from keras_asc.training_losses import compile_model

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    compile_model(model, TrainConfig(loss=loss, focal_gamma=2.0))
    x = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[np.arange(8) % 3]
    p_true = (model.predict(x, verbose=0) * y).sum(1)
    weight = (1 - p_true) ** 2 if loss == "focal" else 1.0
    expected = np.mean(-weight * np.log(p_true))
    assert model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)["loss"] == pytest.approx(expected, rel=1e-5)


def test_scores_match_hand_computation():
    probs = np.array([[0.7, 0.3], [0.2, 0.8], [0.6, 0.4]])
    table = pd.DataFrame({"label": [0, 0, 1], "device": ["a", "s4", "a"]})
    s = score_table(probs, table).set_index("name")
    assert s.loc["all", "accuracy"] == pytest.approx(1 / 3)
    assert s.loc["all", "log_loss"] == pytest.approx(-(np.log(0.7) + np.log(0.2) + np.log(0.4)) / 3)
    assert s.loc["s4", "unseen_device"] and not s.loc["a", "unseen_device"]
    assert log_loss(np.array([[0.0, 1.0]]), np.array([0])) == pytest.approx(-np.log(1e-15))
    with pytest.raises(ValueError):
        score_table(np.full((3, 2), np.nan), table)
