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


def test_hann_window_is_scipys_bit_for_bit():
    import scipy.signal

    from keras_asc.features import hann_window

    for n in (16, 1024, 2048):
        assert np.array_equal(hann_window(n), scipy.signal.get_window("hann", n, fftbins=True))


@pytest.mark.parametrize("hop", [1536, 1024])
def test_numpy_stft_is_librosas_bit_for_bit(hop):
    """The features' STFT without librosa (whose first call costs each worker seconds): the same bits."""
    import librosa

    from keras_asc.features import stft

    rng = np.random.default_rng(hop)
    t = np.arange(441000) / 44100
    clips = [rng.normal(scale=0.1, size=441000).astype(np.float32),
             (0.3 * np.sin(2 * np.pi * 440 * t) + rng.normal(scale=1e-3, size=len(t))).astype(np.float32),
             np.zeros(441000, np.float32)]
    for y in clips:
        want = librosa.stft(y, n_fft=2048, hop_length=hop, window="hann", center=True, pad_mode="constant")
        got = stft(y, n_fft=2048, hop_length=hop)
        assert got.dtype == want.dtype and np.array_equal(got, want)
