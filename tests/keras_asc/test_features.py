import numpy as np
import pytest

from keras_asc.features import FeatureConfig, log_mel


def test_seed_config_shape_and_finite():
    cfg = FeatureConfig.seed(frames_per_second=28, n_mels=128)
    t = np.arange(cfg.n_samples) / cfg.sample_rate
    x = (0.1 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    m = log_mel(x, config=cfg)
    assert m.shape == (128, 288) and m.dtype == np.float32
    assert np.isfinite(m).all()
    assert m.mean(axis=1).max() > np.median(m.mean(axis=1)) + 20


def test_wrong_length_rejected():
    cfg = FeatureConfig(clip_seconds=1.0)
    with pytest.raises(ValueError):
        log_mel(np.zeros(10, np.float32), config=cfg)
