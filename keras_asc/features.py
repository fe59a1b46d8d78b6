"""Log-mel features as in the seed report (section 2.1, Table 5).

Pure functions of (audio, parameters). Caching lives in :mod:`keras_asc.feature_cache`.

Seed reading: Hann window of 2048 samples; hop 1536 samples gives 28.7 frames/s ("28 frames")
and 288 frames per 10 s clip at 44.1 kHz, hop 1024 gives 43 frames/s and 431 frames. The
report's text says "280 frames" and "(280, 256, 1)" for 128 mel bins; with centred frames the
arithmetic gives 288, and the band count is the configured ``n_mels`` (the 256 is a typo).
Power spectrogram -> mel (Slaney-normalised librosa filterbank, 0 Hz to Nyquist) -> dB with
``10*log10(max(x, 1e-10))`` and no top-dB clipping, so the values are a pure function of the
clip (no per-clip reference level).
"""
from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

HOPS_BY_FRAME_RATE = {28: 1536, 43: 1024}


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """Every parameter that changes a feature value. Frozen; saved with every artifact."""

    sample_rate: int = 44100
    clip_seconds: float = 10.0
    n_fft: int = 2048
    hop_length: int = 1536
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float | None = None  # None: Nyquist

    def __post_init__(self) -> None:
        if self.n_mels < 1 or self.n_fft < 16 or self.hop_length < 1:
            raise ValueError(f"invalid feature configuration: {self}")
        if self.clip_seconds <= 0 or self.sample_rate <= 0:
            raise ValueError(f"invalid clip length or sample rate: {self}")

    @property
    def n_samples(self) -> int:
        return int(round(self.sample_rate * self.clip_seconds))

    @property
    def n_frames(self) -> int:
        """Frames per clip with centred framing: ``1 + n_samples // hop_length``."""
        return 1 + self.n_samples // self.hop_length

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_mels, n_frames)``."""
        return (self.n_mels, self.n_frames)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureConfig":
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})

    def describe(self) -> str:
        """One line for headers and reports."""
        return (f"log-mel, {self.sample_rate} Hz, Hann {self.n_fft}, hop {self.hop_length}, {self.n_mels} Slaney mel "
                f"bands {self.fmin:g} Hz-{self.fmax or self.sample_rate / 2:g} Hz, 10*log10(max(power, 1e-10)) dB, "
                "centred frames (zero padding)")

    @classmethod
    def seed(cls, *, frames_per_second: int = 28, n_mels: int = 128, **kw) -> "FeatureConfig":
        """The seed's configurations by name: 28 or 43 frames/s, 64/128/256 mel bands."""
        if frames_per_second not in HOPS_BY_FRAME_RATE:
            raise ValueError(f"frames_per_second must be one of {sorted(HOPS_BY_FRAME_RATE)}")
        return cls(hop_length=HOPS_BY_FRAME_RATE[frames_per_second], n_mels=n_mels, **kw)


@functools.lru_cache(maxsize=8)
def _mel_basis(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None) -> np.ndarray:
    import librosa  # heavy: librosa loads numba (seconds)

    return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax,
                               dtype=np.float64)


def mel_filterbank(config: FeatureConfig) -> np.ndarray:
    """The Slaney mel weights training uses: ``(n_mels, 1 + n_fft // 2)`` float64 (read-only)."""
    basis = _mel_basis(config.sample_rate, config.n_fft, config.n_mels, config.fmin, config.fmax)
    basis.setflags(write=False)
    return basis


@functools.lru_cache(maxsize=8)
def hann_window(n_fft: int) -> np.ndarray:
    """The periodic Hann window of ``n_fft`` samples, float64, computed as SciPy's
    ``get_window("hann", n_fft, fftbins=True)`` (the window librosa's STFT uses), operation for operation:
    bit-identical (tested), without importing SciPy."""
    fac = np.linspace(-np.pi, np.pi, n_fft + 1)
    w = np.zeros(n_fft + 1)
    w += 0.5 * np.cos(0 * fac)
    w += 0.5 * np.cos(fac)
    w = w[:-1]
    w.setflags(write=False)
    return w


def stft(audio: np.ndarray, *, n_fft: int, hop_length: int) -> np.ndarray:
    """librosa's ``stft(audio, n_fft, hop_length, window="hann", center=True, pad_mode="constant")``,
    bit-identical (tested) with NumPy alone: centred frames of the zero-padded clip, each times the
    float64 Hann window, ``numpy.fft.rfft`` in float64, stored as complex64. ``audio``: (samples,)
    float32 -> (1 + n_fft // 2, 1 + samples // hop_length) complex64. (librosa's first call in a process
    costs about 2 CPU-s of lazy imports, paid by every feature worker.)"""
    pad = np.pad(np.asarray(audio, np.float32), n_fft // 2, mode="constant")
    frames = np.lib.stride_tricks.sliding_window_view(pad, n_fft)[::hop_length]
    return np.fft.rfft(frames * hann_window(n_fft), axis=1).T.astype(np.complex64)


def log_mel(audio: np.ndarray, *, config: FeatureConfig, mel_basis: np.ndarray | None = None) -> np.ndarray:
    """Log-mel power spectrogram of one clip.

    Args:
        audio: shape ``(config.n_samples,)``, float32 mono at ``config.sample_rate``.
        config: feature parameters.
        mel_basis: :func:`mel_filterbank` of ``config`` when the caller has it (a worker process given it
            by its parent does not load librosa); computed when None.

    Returns:
        np.ndarray, shape ``(config.n_mels, config.n_frames)``, dtype float32, in dB.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1 or audio.shape[0] != config.n_samples:
        raise ValueError(f"audio must have shape ({config.n_samples},), got {audio.shape}")
    spec = stft(audio, n_fft=config.n_fft, hop_length=config.hop_length)
    # the mel projection runs in float64: a float32 matrix product's rounding depends on how
    # many BLAS threads split it, so 1 and 2 worker processes would differ in the last bit
    power = np.abs(spec).astype(np.float64) ** 2
    mel = (mel_filterbank(config) if mel_basis is None else mel_basis) @ power
    out = 10.0 * np.log10(np.maximum(mel, 1e-10))
    assert out.shape == config.shape, (out.shape, config.shape)
    return out.astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Normalization:
    """Per-mel-band mean and standard deviation, fitted on the training split only."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, features: np.ndarray, *, chunk: int = 256) -> "Normalization":
        """Fit on ``features`` of shape ``(n_clips, n_mels, n_frames)`` (a memmap is fine)."""
        n_mels = features.shape[1]
        s = np.zeros(n_mels, np.float64)
        s2 = np.zeros(n_mels, np.float64)
        count = 0
        for i in range(0, features.shape[0], chunk):
            block = np.asarray(features[i:i + chunk], dtype=np.float64)
            s += block.sum(axis=(0, 2))
            s2 += (block ** 2).sum(axis=(0, 2))
            count += block.shape[0] * block.shape[2]
        if count == 0:
            raise ValueError("cannot fit normalization on an empty training split")
        mean = s / count
        std = np.sqrt(np.maximum(s2 / count - mean ** 2, 0.0))
        std = np.maximum(std, 1e-3)
        return cls(tuple(float(m) for m in mean), tuple(float(v) for v in std))

    def apply(self, features: np.ndarray) -> np.ndarray:
        """``(x - mean[band]) / std[band]`` for ``(..., n_mels, n_frames)``; returns float32."""
        mean = np.asarray(self.mean, np.float32)[:, None]
        std = np.asarray(self.std, np.float32)[:, None]
        return ((np.asarray(features, np.float32) - mean) / std).astype(np.float32)

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalization":
        mean, std = tuple(map(float, d["mean"])), tuple(map(float, d["std"]))
        if len(mean) != len(std) or not all(map(math.isfinite, mean + std)):
            raise ValueError("normalization statistics are malformed or non-finite")
        return cls(mean, std)
