import numpy as np
import pytest
import soundfile as sf

from keras_asc.audio import AudioError, load_audio
from keras_asc.features import FeatureConfig, log_mel

SR = 44100


def _noise_tone(seconds=1.0, sr=SR, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    return (0.2 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def test_16_and_24_bit_give_near_identical_features(tmp_path):
    x = _noise_tone()
    sf.write(tmp_path / "a16.wav", x, SR, subtype="PCM_16")
    sf.write(tmp_path / "a24.wav", x, SR, subtype="PCM_24")
    cfg = FeatureConfig(clip_seconds=1.0)
    m16 = log_mel(load_audio(tmp_path / "a16.wav", clip_seconds=1.0), config=cfg)
    m24 = log_mel(load_audio(tmp_path / "a24.wav", clip_seconds=1.0), config=cfg)
    assert m16.shape == m24.shape == cfg.shape
    # 16-bit quantization noise is ~-96 dBFS: only near-silent bands can move by more than 0.1 dB
    assert np.median(np.abs(m16 - m24)) < 0.01
    assert np.abs(m16 - m24).max() < 1.0


def test_stereo_float_flac_and_padding(tmp_path):
    x = _noise_tone(0.5)
    sf.write(tmp_path / "st.wav", np.stack([x, 0.5 * x], axis=1), SR, subtype="FLOAT")
    sf.write(tmp_path / "m.flac", x, SR, subtype="PCM_24")
    y = load_audio(tmp_path / "st.wav", clip_seconds=1.0)
    assert y.shape == (SR,) and y.dtype == np.float32
    np.testing.assert_allclose(y[: x.size], 0.75 * x, atol=1e-6)  # channels averaged
    assert not y[x.size:].any()  # zero-padded at the end
    assert load_audio(tmp_path / "m.flac", clip_seconds=0.25).shape == (SR // 4,)


def test_resampling_keeps_the_tone(tmp_path):
    sr = 22050
    t = np.arange(sr) / sr
    sf.write(tmp_path / "r.wav", (0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32), sr, subtype="PCM_24")
    y = load_audio(tmp_path / "r.wav", sample_rate=SR, clip_seconds=1.0)
    assert y.shape == (SR,)
    spec = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    assert abs(np.argmax(spec) * SR / y.size - 1000) < 2
    assert np.sqrt(np.mean(y[1000:-1000] ** 2)) == pytest.approx(0.3 / np.sqrt(2), rel=0.02)


@pytest.mark.parametrize("kind", ["missing", "empty", "not_audio", "truncated"])
def test_bad_audio_names_the_file(tmp_path, kind):
    p = tmp_path / f"{kind}.wav"
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "not_audio":
        p.write_text("this is a CSV, not a WAV\n")
    elif kind == "truncated":
        sf.write(p, _noise_tone(), SR, subtype="PCM_24")
        p.write_bytes(p.read_bytes()[: 44 + 3 * 1000])
    with pytest.raises(AudioError, match=p.name):
        load_audio(p, clip_seconds=1.0)
