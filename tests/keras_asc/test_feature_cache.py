import numpy as np

from keras_asc.dataset import SCENE_LABELS, read_fold1
from keras_asc.feature_cache import FeatureSet, build_feature_cache, cache_key, extract_features
from keras_asc.features import FeatureConfig
from tests.conftest import TINY_CLIP_SECONDS

QUIET = dict(log=lambda *_: None)


def test_cache_contents(tiny_features):
    fs = tiny_features
    cfg = fs.feature_config
    assert cfg.n_mels == 128 and cfg.hop_length == 1536
    for split in ("train", "evaluate"):
        x = fs.features(split)
        assert x.shape == (len(fs.table(split)), *cfg.shape) and x.dtype == np.float32
        assert np.isfinite(x).all()
    assert fs.config["labels"] == list(SCENE_LABELS)
    # normalization fitted on train only: train is standardized per band, evaluate is not exactly
    z = fs.normalization.apply(fs.features("train"))
    np.testing.assert_allclose(z.mean(axis=(0, 2)), 0, atol=1e-3)
    np.testing.assert_allclose(z.std(axis=(0, 2)), 1, atol=1e-2)


def test_reuse_and_invalidation(tiny_dataset, tiny_features, tiny_work):
    cfg = tiny_features.feature_config
    messages = []
    again = build_feature_cache(tiny_dataset, tiny_work, config=cfg, log=messages.append)
    assert again.path == tiny_features.path and "reusing" in messages[0]
    other = build_feature_cache(tiny_dataset, tiny_work, config=FeatureConfig.seed(
        n_mels=64, clip_seconds=TINY_CLIP_SECONDS), workers=1, **QUIET)
    assert other.path != tiny_features.path
    assert other.features("train").shape[1] == 64
    # a changed file list is a new key too
    tables = read_fold1(tiny_dataset)
    assert cache_key(cfg, tables) == tiny_features.config["key"]
    assert cache_key(cfg, {**tables, "train": tables["train"].iloc[1:]}) != tiny_features.config["key"]


def test_workers_compute_identical_features(tiny_features):
    paths = tiny_features.table("train")["path"].tolist()[:12]
    cfg = tiny_features.feature_config
    one, two = (np.empty((len(paths), *cfg.shape), np.float32) for _ in range(2))
    extract_features(paths, config=cfg, out=one, workers=1, chunk=5)
    extract_features(paths, config=cfg, out=two, workers=2, chunk=5)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one, tiny_features.features("train")[:12])


def test_interrupted_build_leaves_no_cache(tiny_dataset, tmp_path, monkeypatch):
    import keras_asc.feature_cache as fc

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(fc, "extract_jobs", boom)  # the one extraction of every split
    cfg = FeatureConfig.seed(n_mels=64, clip_seconds=TINY_CLIP_SECONDS)
    try:
        build_feature_cache(tiny_dataset, tmp_path, config=cfg, **QUIET)
    except KeyboardInterrupt:
        pass
    assert not any((tmp_path / "features").iterdir())  # no partial entry, no temp folder
    monkeypatch.undo()
    fs = build_feature_cache(tiny_dataset, tmp_path, config=cfg, workers=1, **QUIET)
    assert FeatureSet.open(fs.path).features("evaluate").shape[0] == 80


def test_a_clip_replaced_by_other_audio_of_the_same_size_changes_the_key(tiny_dataset, tmp_path):
    """All TAU clips have one size: the key must see a replaced file without reading every byte."""
    import os
    import shutil

    from tests.conftest import copy_dataset

    data = copy_dataset(tiny_dataset, tmp_path / "data")
    config = FeatureConfig.seed(clip_seconds=TINY_CLIP_SECONDS)
    before = cache_key(config, read_fold1(data, check_audio=False))
    audio = sorted((data / "audio").glob("*.wav"))
    assert audio[0].stat().st_size == audio[1].stat().st_size
    target = audio[0]
    target.unlink()  # the copy hard-links the audio: replace the link, not the shared file
    shutil.copyfile(audio[1], target)
    os.utime(target, ns=(audio[0].stat().st_atime_ns, audio[0].stat().st_mtime_ns + 1_000_000))
    assert cache_key(config, read_fold1(data, check_audio=False)) != before
