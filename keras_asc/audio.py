"""Audio loading: any WAV/FLAC soundfile reads -> float32 mono at the configured rate and length."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from keras_asc.errors import AscError


class AudioError(AscError, ValueError):
    """An audio file cannot be used; the message names the file and what to do."""


#: Thresholds for the suspect-audio warnings of :func:`audio_warnings`.
SILENT_PEAK = 1e-5  # -100 dBFS: nothing was recorded
CANCEL_RATIO = 0.05  # mono mix RMS below 5 % of the channels' RMS: the channels cancel
SHORT_FRACTION = 0.5  # shorter than half the clip length: mostly padding


def audio_warnings(path: Path, data: np.ndarray, sr: int, *, sample_rate: int, clip_seconds: float) -> list[str]:
    """Signs that a readable file is not what training expects. ``data``: (frames, channels)
    float32 as read. Each warning is one sentence naming the file."""
    out = []
    peak = float(np.abs(data).max())
    if sr < sample_rate:
        out.append(f"{path}: recorded at {sr} Hz, below the feature rate {sample_rate} Hz; upsampled, it "
                   f"holds nothing above {sr / 2:.0f} Hz")
    if peak < SILENT_PEAK:
        out.append(f"{path}: silent (peak {peak:.1e}); features of silence teach the model nothing")
    elif data.shape[1] > 1:
        mix = float(np.sqrt(np.mean(np.mean(data, axis=1, dtype=np.float64) ** 2)))
        channels = float(np.sqrt(np.mean(data.astype(np.float64) ** 2)))
        if mix < CANCEL_RATIO * channels:
            out.append(f"{path}: its {data.shape[1]} channels cancel when averaged to mono (mix RMS "
                       f"{mix:.1e} vs channel RMS {channels:.1e}); one channel is probably inverted")
    if peak > 1.0 + 1e-6:
        out.append(f"{path}: samples reach {peak:.3g}, beyond full scale (+-1): a float file with another "
                   "scaling or a corrupt one")
    seconds = data.shape[0] / sr
    if seconds < SHORT_FRACTION * clip_seconds:
        out.append(f"{path}: only {seconds:.2f} s long, padded with silence to {clip_seconds:g} s")
    return out


def load_audio(path: Path, *, sample_rate: int = 44100, clip_seconds: float = 10.0,
               warnings: list[str] | None = None) -> np.ndarray:
    """Read ``path`` as mono float32 of exactly ``round(sample_rate * clip_seconds)`` samples.

    16/24/32-bit integer and float WAV or FLAC are read with soundfile. Multi-channel audio is
    averaged to mono; another sample rate is resampled with librosa (soxr_hq); the result is
    zero-padded or cropped at the end to the clip length.

    Returns:
        np.ndarray, shape ``(n_samples,)``, dtype float32, values in about [-1, 1].

    Readable but suspect audio (:func:`audio_warnings`) is appended to ``warnings`` when given.

    Raises:
        AudioError: missing, empty, truncated, non-audio or non-finite file.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: audio file not found; restore it or remove it from the split files")
    try:
        with sf.SoundFile(path) as f:
            sr, declared = f.samplerate, f.frames
            data = f.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioError(f"{path}: not a readable audio file ({e}); re-extract or re-download it") from e
    if data.shape[0] == 0:
        raise AudioError(f"{path}: audio file holds no samples; re-extract or re-download it")
    if data.shape[0] < declared:
        raise AudioError(f"{path}: truncated: header declares {declared} frames, only "
                         f"{data.shape[0]} present; re-extract or re-download it")
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: contains NaN or infinite samples; the file is corrupt. Replace it with a good "
                         "copy from the dataset, or remove its rows from meta.csv and the split files")
    missing = _wav_missing_bytes(path)
    if missing > 0:
        raise AudioError(f"{path}: truncated: the WAV header declares {missing} more bytes of "
                         "audio than the file holds; re-extract or re-download it")
    if warnings is not None:
        warnings.extend(audio_warnings(path, data, sr, sample_rate=sample_rate, clip_seconds=clip_seconds))
    mono = data.mean(axis=1, dtype=np.float32)
    if sr != sample_rate:
        import librosa  # heavy: librosa loads numba (seconds)

        mono = librosa.resample(mono, orig_sr=sr, target_sr=sample_rate, res_type="soxr_hq")
    n = int(round(sample_rate * clip_seconds))
    if mono.shape[0] < n:
        mono = np.pad(mono, (0, n - mono.shape[0]))
    return np.ascontiguousarray(mono[:n], dtype=np.float32)


def _wav_missing_bytes(path: Path) -> int:
    """For a RIFF/WAV file, how many bytes its ``data`` chunk declares beyond the end of file.

    libsndfile silently shortens a truncated WAV to what is there, so this is checked by
    walking the chunk headers. Returns 0 for other formats or complete files.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return 0
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk = f.read(8)
            n = int.from_bytes(chunk[4:8], "little")
            if chunk[:4] == b"data":
                return max(0, pos + 8 + n - size) if n != 0xFFFFFFFF else 0
            pos += 8 + n + (n & 1)
    return 0
