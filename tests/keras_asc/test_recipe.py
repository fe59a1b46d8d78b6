"""Today's recipe (issue #22): distillation from teacher runs, Freq-MixStyle, device impulse responses,
and the DCASE 2024 baseline-sized model."""
from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from asc_cli.main import main
from keras_asc import artifacts, augment, distill
from keras_asc.dataset import SCENE_LABELS
from keras_asc.features import FeatureConfig
from keras_asc.training import RunExists, train
from keras_asc.training_config import TrainConfig
from keras_asc.training_data import make_train_pipeline
from keras_asc.training_losses import make_loss
from tests.conftest import TINY_CLIP_SECONDS, TINY_TRAIN

QUIET = dict(log=lambda *_: None)


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# ----------------------------------------------------------------------------- distillation loss
def test_kd_loss_matches_hand_computed_numpy():
    import tensorflow as tf

    labels = np.eye(3, dtype=np.float32)[[0, 2]]
    teacher = np.array([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]], np.float32)
    student = np.array([[1.0, 1.0, 0.0], [-1.0, 0.0, 0.5]], np.float32)
    a, t = 0.7, 3.0
    ce = -np.log(_softmax(student)[[0, 1], [0, 2]])
    pt, ps = _softmax(teacher / t), _softmax(student / t)
    expected = (1 - a) * ce + a * t * t * np.sum(pt * np.log(pt / ps), axis=1)
    got = distill.kd_loss(tf.constant(labels), tf.constant(teacher), tf.constant(student), weight=a, temperature=t,
                          label_loss=lambda y, z: tf.nn.softmax_cross_entropy_with_logits(y, z))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)


def test_training_loss_splits_labels_and_teacher_logits_from_probabilities():
    """make_loss on a model's probabilities: the student logits come back from the softmax (up to a constant)."""
    import tensorflow as tf

    cfg = TrainConfig(teachers=("/t",), kd_weight=0.3, kd_temperature=2.0)
    n = len(SCENE_LABELS)
    rng = np.random.default_rng(0)
    student, teacher = rng.normal(size=(4, n)).astype(np.float32), rng.normal(size=(4, n)).astype(np.float32)
    labels = np.eye(n, dtype=np.float32)[[1, 3, 5, 7]]
    probs = tf.nn.softmax(tf.constant(student))
    got = make_loss(cfg, n)(tf.constant(np.concatenate([labels, teacher], 1)), probs).numpy()
    ce = -np.log(_softmax(student)[np.arange(4), [1, 3, 5, 7]])
    pt, ps = _softmax(teacher / 2), _softmax(student / 2)
    np.testing.assert_allclose(got, 0.7 * ce + 0.3 * 4 * np.sum(pt * np.log(pt / ps), 1), rtol=1e-4)
    # validation targets (labels only): the label loss alone
    np.testing.assert_allclose(make_loss(cfg, n)(tf.constant(labels), probs).numpy(), ce, rtol=1e-4)


# ----------------------------------------------------------------------------- Freq-MixStyle
def test_freq_mixstyle_probability_zero_is_the_identity():
    x = np.random.default_rng(1).normal(size=(4, 16, 10, 1)).astype(np.float32)
    out = augment.random_freq_mixstyle(x, p=0.0, alpha=0.3).numpy()
    assert out.shape == x.shape
    np.testing.assert_array_equal(out, x)


def test_freq_mixstyle_mixes_per_band_statistics_as_numpy_does():
    rng = np.random.default_rng(2)
    x = (rng.normal(size=(3, 8, 12, 1)) * rng.uniform(0.5, 3, size=(3, 8, 1, 1))
         + rng.normal(size=(3, 8, 1, 1)) * 4).astype(np.float32)
    lam, perm = np.array([0.2, 0.9, 0.5], np.float32), np.array([2, 0, 1], np.int32)
    out = augment.freq_mixstyle(x, lam=lam, perm=perm).numpy()
    # numpy reference: per clip and mel bin over frames and channels, unbiased variance, eps 1e-6
    mu = x.mean(axis=(2, 3), keepdims=True)
    sig = np.sqrt(x.var(axis=(2, 3), keepdims=True, ddof=1) + 1e-6)
    lm = lam[:, None, None, None]
    mu_mix, sig_mix = lm * mu + (1 - lm) * mu[perm], lm * sig + (1 - lm) * sig[perm]
    np.testing.assert_allclose(out, (x - mu) / sig * sig_mix + mu_mix, rtol=1e-4, atol=1e-4)
    assert out.shape == x.shape
    np.testing.assert_allclose(out.mean(axis=(2, 3)), mu_mix[..., 0, 0], atol=1e-4)
    # the random wrapper with p=1 mixes (statistics move), keeping the shape: 16 clips with distinct band
    # means, so that an identity permutation or every weight near 1 cannot happen in practice
    import tensorflow as tf

    tf.random.set_seed(0)
    many = (rng.normal(size=(16, 8, 12, 1)) + rng.normal(size=(16, 8, 1, 1)) * 4).astype(np.float32)
    mixed = augment.random_freq_mixstyle(many, p=1.0, alpha=0.3).numpy()
    assert mixed.shape == many.shape
    assert np.abs(mixed.mean(axis=(2, 3)) - many.mean(axis=(2, 3))).max() > 0.5


# ----------------------------------------------------------------------------- impulse responses
def test_unit_impulse_is_the_identity_on_audio():
    audio = np.random.default_rng(3).normal(size=1000).astype(np.float32)
    np.testing.assert_allclose(augment.convolve_ir(audio, np.array([1.0])), audio, atol=1e-6)
    delayed = augment.convolve_ir(audio, np.array([0.0, 0.0, 1.0]))
    np.testing.assert_allclose(delayed[2:], audio[:-2], atol=1e-6)
    assert delayed.shape == audio.shape and delayed.dtype == np.float32


def test_generated_dataset_ships_simulated_device_responses(tiny_dataset):
    files = augment.list_impulse_responses(tiny_dataset / "impulse_responses")
    assert len(files) >= 3
    irs = [augment.load_impulse_response(f, sample_rate=44100) for f in files]
    assert all(np.isfinite(ir).all() and np.max(np.abs(ir)) == pytest.approx(1.0, abs=1e-6) for ir in irs)
    assert not np.allclose(irs[0], irs[1])


def test_dir_copies_with_a_unit_impulse_equal_the_cached_features(tiny_features, tmp_path):
    import soundfile as sf

    folder = tmp_path / "irs"
    folder.mkdir()
    sf.write(folder / "unit.wav", np.array([1.0, 0.0, 0.0, 0.0], np.float32), 44100, subtype="FLOAT")
    dirs = augment.dir_feature_cache(tiny_features, folder=folder, copies=2, seed=0, workers=1, **QUIET)
    copies = dirs.features()
    assert copies.shape == (len(tiny_features.table("train")), 2, *tiny_features.config["shape"])
    np.testing.assert_allclose(copies[:, 0], tiny_features.features("train"), atol=1e-3)
    again = augment.dir_feature_cache(tiny_features, folder=folder, copies=2, seed=0, workers=1, **QUIET)
    assert again.path == dirs.path  # computed once, reused
    shutil.rmtree(dirs.path)


def test_empty_missing_or_broken_response_folder_is_refused(tmp_path):
    with pytest.raises(augment.ImpulseResponseError, match="no .wav files"):
        augment.check_impulse_responses(tmp_path)
    with pytest.raises(augment.ImpulseResponseError, match="not a folder"):
        augment.check_impulse_responses(tmp_path / "nowhere")
    (tmp_path / "broken.wav").write_bytes(b"RIFF0000WAVE")
    with pytest.raises(augment.ImpulseResponseError, match="broken.wav"):
        augment.check_impulse_responses(tmp_path)


# ----------------------------------------------------------------------------- teachers
def test_teacher_logits_are_computed_once_and_reused(tiny_run, tiny_features, tmp_path, monkeypatch):
    calls = []
    real = distill.compute_clip_logits

    def counting(model, x, **kw):
        calls.append(len(x))
        return real(model, x, **kw)

    monkeypatch.setattr(distill, "compute_clip_logits", counting)
    runs = (str(tiny_run), str(tiny_run))
    first, ident = distill.teacher_logits(tiny_features, tmp_path, runs=runs, **QUIET)
    n = len(tiny_features.table("train"))
    assert calls == [n, n] and first.shape == (n, len(SCENE_LABELS)) and first.dtype == np.float32
    second, _ = distill.teacher_logits(tiny_features, tmp_path, runs=runs, **QUIET)
    assert calls == [n, n]  # read back, not recomputed
    np.testing.assert_array_equal(first, second)
    # the teacher's probabilities are the softmax of the stored logits (the mean of two equal teachers)
    from keras_asc.run_record import load_run_model
    from keras_asc.training_data import load_split

    x, _ = load_split(tiny_features, "train")
    probs = load_run_model(tiny_run).predict(x[:8], verbose=0)
    np.testing.assert_allclose(_softmax(first[:8].astype(np.float64)), probs, atol=1e-4)
    assert ident["teachers"][0]["model_sha256"] == artifacts.read_json(tiny_run / "config.json")["model_sha256"]


def test_windowed_teacher_logits_are_the_mean_of_its_windows():
    import tf_keras as keras

    from keras_asc.models import build_model
    from keras_asc.windows import split_windows

    model = build_model("resnet11", (16, 8, 1), width=0.25)
    x = np.random.default_rng(4).normal(size=(3, 16, 20, 1)).astype(np.float32)
    got = distill.clip_logits(model, x, train_config=TrainConfig(window_frames=8))
    scores = keras.Model(model.input, model.layers[-2].output).predict(split_windows(x, window=8, hop=8), verbose=0)
    np.testing.assert_allclose(got, scores.reshape(3, -1, 10).mean(1), rtol=1e-5, atol=1e-6)


def test_teacher_refusals_name_the_run_and_the_fix(tiny_run, tmp_path):
    ours = FeatureConfig.seed(clip_seconds=TINY_CLIP_SECONDS)
    assert len(distill.check_teachers((str(tiny_run),), features=ours)) == 1
    with pytest.raises(distill.TeacherError, match=r"--teacher .*other features.*--n-mels"):
        distill.check_teachers((str(tiny_run),), features=dataclasses.replace(ours, n_mels=64))
    with pytest.raises(distill.TeacherError, match="--teacher .*not a training run"):
        distill.check_teachers((str(tmp_path),), features=ours)
    unfinished = tmp_path / "unfinished"
    shutil.copytree(tiny_run, unfinished, ignore=shutil.ignore_patterns("checkpoints", "tensorboard", "export*"))
    cfg = artifacts.read_json(unfinished / "config.json")
    artifacts.write_json(unfinished / "config.json", {**cfg, "status": "training"})
    with pytest.raises(distill.TeacherError, match="--teacher .*has not finished.*--resume"):
        distill.check_teachers((str(unfinished),), features=ours)
    artifacts.write_json(unfinished / "config.json", {**cfg, "labels": ["a", "b"]})
    with pytest.raises(distill.TeacherError, match="--teacher .*(classes|labels)"):
        distill.check_teachers((str(unfinished),), features=ours)
    artifacts.write_json(unfinished / "config.json", {**cfg, "model_sha256": "0" * 64})
    with pytest.raises(distill.TeacherError, match="--teacher .*changed since"):
        distill.check_teachers((str(unfinished),), features=ours)


# ----------------------------------------------------------------------------- the run
def test_pipeline_targets_carry_teacher_logits():
    x = np.zeros((6, 8, 10, 1), np.float32)
    y = np.arange(6) % 3
    logits = np.arange(6 * 3, dtype=np.float32).reshape(6, 3)
    cfg = TrainConfig(batch_size=6, teachers=("/t",))
    bx, by = next(iter(make_train_pipeline(x, y, config=cfg, n_classes=3, teacher_logits=logits)))
    by = by.numpy()
    assert by.shape == (6, 6)
    rows = by[:, :3].argmax(1)
    for r in range(6):  # each row's teacher logits belong to a clip of its label
        clip = int(by[r, 3] // 3)
        assert y[clip] == rows[r] and np.array_equal(by[r, 3:], logits[clip])


@pytest.mark.slow  # trains a student with DIR copies: over the fast lane's 20 s per test
def test_run_with_all_three_is_recorded_and_resume_refuses_other_values(tiny_run, tiny_features, tiny_dataset, tmp_path):
    cfg = TrainConfig(**{**TINY_TRAIN, "epochs": 2}, teachers=(str(tiny_run),), kd_weight=0.5, kd_temperature=2.0,
                      freq_mixstyle_p=0.5, freq_mixstyle_alpha=0.3,
                      dir_folder=str(tiny_dataset / "impulse_responses"), dir_p=0.5, dir_copies=1)
    run = tmp_path / "student"
    out = train(tiny_features, run, config=cfg, **QUIET)
    assert out["status"] == "done"
    saved = artifacts.read_json(run / "config.json")
    assert TrainConfig.from_dict(saved["train"]) == cfg
    assert saved["distillation"]["teachers"][0]["model_sha256"] == artifacts.read_json(
        tiny_run / "config.json")["model_sha256"]
    assert set(saved["dir_aug"]["impulse_responses"]) == {p.name for p in (tiny_dataset / "impulse_responses").iterdir()}
    assert len(list((run / "teacher_logits").glob("*.npy"))) == 1
    for change in ({"freq_mixstyle_p": 0.4}, {"kd_temperature": 3.0}, {"dir_p": 0.2}, {"teachers": ()}):
        with pytest.raises(RunExists, match="different training options"):
            train(tiny_features, run, config=dataclasses.replace(cfg, **change), resume=True, **QUIET)
    shutil.rmtree(saved["dir_aug_cache"])


# ----------------------------------------------------------------------------- options
@pytest.mark.parametrize("argv,option", [
    (["--kd-weight", "1.5"], "--kd-weight"),
    (["--kd-temperature", "0"], "--kd-temperature"),
    (["--freq-mixstyle", "1.2,0.3"], "--freq-mixstyle"),
    (["--freq-mixstyle", "0.4,0"], "--freq-mixstyle"),
    (["--freq-mixstyle", "0.4"], "--freq-mixstyle"),
    (["--dir-aug", "somewhere"], "--dir-aug"),
    (["--dir-aug", "somewhere,2"], "--dir-aug"),
])
def test_bad_recipe_values_exit_2(argv, option, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), *argv])
    assert e.value.code == 2 and option in capsys.readouterr().err


def test_missing_response_folder_and_unfinished_teacher_are_refused_before_work(tiny_dataset, tmp_path, capsys):
    base = ["train", "--data", str(tiny_dataset), "--out", str(tmp_path / "r"), "--work", str(tmp_path / "w"),
            "--clip-seconds", str(TINY_CLIP_SECONDS)]
    assert main([*base, "--dir-aug", f"{tmp_path / 'nowhere'},0.5"]) == 2
    assert "--dir-aug" in capsys.readouterr().err
    assert main([*base, "--teacher", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "--teacher" in err and "Traceback" not in err
    assert not (tmp_path / "w").exists() and not (tmp_path / "r").exists()


# ----------------------------------------------------------------------------- the model
def test_dcase2024_baseline_has_the_baselines_parameter_count():
    from keras_asc.models import build_model, count_macs, trainable_params

    model = build_model("dcase2024_baseline", (256, 65, 1))
    assert trainable_params(model) == 61148  # CPJKU/dcase2024_task1_baseline's README
    assert count_macs(model) == 29416448  # its 29,419,156 less the 2,708 MACs it counts for BatchNorm
