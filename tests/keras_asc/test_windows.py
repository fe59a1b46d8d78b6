"""Windowed models: a clip cut into windows, random crops in training, clip decisions by the mean
of the windows' probabilities."""
import numpy as np
import pytest

from keras_asc import artifacts
from keras_asc.evaluation import evaluate_run
from keras_asc.run_record import load_run_model
from keras_asc.training import train
from keras_asc.training_config import TrainConfig
from keras_asc.training_data import load_split, make_train_pipeline
from keras_asc.windows import combine_windows, split_windows, window_plan, window_starts
from tests.conftest import TINY_TRAIN

QUIET = dict(log=lambda *_: None)


def test_window_starts_cover_every_frame():
    assert window_starts(n_frames=58, window=16, hop=16) == (0, 16, 32, 42)  # the last ends at the clip's end
    assert window_starts(n_frames=64, window=16, hop=16) == (0, 16, 32, 48)
    assert window_starts(n_frames=58, window=16, hop=8) == (0, 8, 16, 24, 32, 40, 42)
    assert window_starts(n_frames=58, window=58, hop=1) == (0,)
    with pytest.raises(ValueError, match="does not fit"):
        window_starts(n_frames=10, window=16, hop=16)


def test_split_and_combine_are_clip_major():
    x = np.arange(2 * 3 * 10).reshape(2, 3, 10, 1).astype(np.float32)
    w = split_windows(x, window=4, hop=4)  # starts 0, 4, 6
    assert w.shape == (6, 3, 4, 1)
    np.testing.assert_array_equal(w[2], x[0, :, 6:10])
    np.testing.assert_array_equal(w[3], x[1, :, 0:4])
    p = np.array([[1, 0], [0, 1], [1, 0], [0, 1], [0, 1], [0, 1]], np.float64)
    np.testing.assert_allclose(combine_windows(p, windows_per_clip=3), [[2 / 3, 1 / 3], [0, 1]])


def test_random_crops_are_windows_of_the_clip():
    x = np.arange(4 * 2 * 20).reshape(4, 2, 20, 1).astype(np.float32)
    cfg = TrainConfig(batch_size=4, window_frames=5, seed=1)
    bx, _ = next(iter(make_train_pipeline(x, np.zeros(4, np.int64), config=cfg, n_classes=10)))
    bx = bx.numpy()
    assert bx.shape == (4, 2, 5, 1)
    for crop in bx:  # consecutive frames of one clip, any offset
        clip, start = divmod(int(crop[0, 0, 0]), 40)
        np.testing.assert_array_equal(crop, x[clip, :, start:start + 5])


def test_window_options_are_checked():
    with pytest.raises(ValueError, match="invalid windows"):
        TrainConfig(window_hop=4)
    with pytest.raises(ValueError, match="longer than the clip"):
        TrainConfig(window_frames=100).input_frames(58)


@pytest.fixture(scope="module")
def windowed_run(tiny_features, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "tiny_windowed"
    train(tiny_features, run_dir, config=TrainConfig(**{**TINY_TRAIN, "epochs": 8}, window_frames=16), **QUIET)
    return run_dir


def test_windowed_run_takes_windows_and_evaluates_whole_clips(windowed_run, tiny_features, tiny_dataset, tiny_work):
    cfg = artifacts.read_json(windowed_run / "config.json")
    assert cfg["input_shape"] == [128, 16, 1] and cfg["train"]["window_frames"] == 16
    model = load_run_model(windowed_run)
    assert tuple(model.input.shape[1:]) == (128, 16, 1)
    evaluate_run(windowed_run, tiny_dataset, tiny_work, **QUIET)
    metrics = artifacts.read_json(windowed_run / "metrics.json")
    assert metrics["windows"]["starts"] == [0, 16, 32, 42] and metrics["windows"]["per_clip"] == 4
    # the clip probabilities are the mean of the model's probabilities on the 4 windows
    x, y = load_split(tiny_features, "evaluate", normalization=None)
    plan = window_plan(frames=16, hop=None, clip_frames=x.shape[2])
    probs = combine_windows(model.predict(split_windows(x, window=16, hop=16), verbose=0), windows_per_clip=plan.per_clip)
    assert metrics["scores"][0]["accuracy"] == pytest.approx(np.mean(probs.argmax(1) == y))
    combo = metrics["combination"]
    assert combo["used"] == "mean of window probabilities"
    assert set(combo) == {"used", "mean_probabilities", "mean_pre_softmax_scores"}
    assert combo["mean_probabilities"]["accuracy"] == metrics["scores"][0]["accuracy"]


def test_an_epoch_of_crops_covers_the_clip_frames():
    """ceil(20 / 5) = 4 crops of each of 3 clips per epoch: as many frames as one whole-clip epoch."""
    x = np.arange(3 * 2 * 20).reshape(3, 2, 20, 1).astype(np.float32)
    cfg = TrainConfig(batch_size=5, window_frames=5, seed=0)
    batches = [bx.numpy() for bx, _ in make_train_pipeline(x, np.zeros(3, np.int64), config=cfg, n_classes=10)]
    crops = np.concatenate(batches)
    assert crops.shape == (12, 2, 5, 1)
    assert sorted(int(c[0, 0, 0]) // 40 for c in crops) == [0] * 4 + [1] * 4 + [2] * 4
