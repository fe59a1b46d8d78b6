"""Augmentations against unseen recording devices: Freq-MixStyle and device impulse responses (DIR).

**Freq-MixStyle** (Schmid et al., DCASE 2022 workshop; CP-Mobile, DCASE 2023): with probability
``p`` per batch, every clip's log-mel is normalized per frequency band (mean and standard
deviation over time and channels, per mel bin) and given the band statistics mixed with those of
another clip of the batch, ``lam * own + (1 - lam) * other``, ``lam ~ Beta(alpha, alpha)`` per clip.
As in CP-JKU's code: the variance is unbiased (divides by ``frames * channels - 1``), ``eps``
1e-6 is added before the square root. It runs on the training tensor in the tf.data pipeline
(``keras_asc.training.make_train_pipeline``), after the random crop: it mixes the statistics of
what the model sees.

**Device impulse responses**: a recording through device D is, to first order, the clip
convolved with D's impulse response. CP-JKU convolve the waveform with a random MicIRP response
per clip with probability ``p``. This project trains from cached log-mel features, so the
convolution cannot happen per epoch without recomputing log-mels from audio every epoch. Instead
:func:`dir_feature_cache` computes, once, ``copies`` DIR-convolved log-mels of every training clip
(each copy with an impulse response drawn by a generator of fixed seed), cached under
``WORK/dir_features/<key>/`` by the content hash of the impulse response files, each training
clip's audio, the feature parameters and ``copies``. The copies do not depend on the training
seed, so the runs of several seeds share one cache (on TAU 2022's 139,620 training clips the copies
take hours); which copy a clip gets each epoch does. Each epoch, each clip is replaced
with probability ``p`` by one of its copies picked uniformly. The difference from per-epoch
convolution: a clip meets at most ``copies`` responses over the whole training instead of a fresh
one each time (with 66 MicIRP responses and the default 4 copies, a clip sees 4 of them).

:func:`write_simulated_irs` writes a few simulated device responses (housing reflections, a
band-pass and capsule resonances, as the generated dataset's devices are made) for tests; the
generated dataset ships them in ``<dataset>/impulse_responses/``.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from keras_asc import artifacts
from keras_asc.audio import load_audio
from keras_asc.errors import AscError
from keras_asc.features import FeatureConfig, log_mel
from keras_asc.parallel import DEFAULT_WORKERS, parallel_map

#: Added to the per-band variance before the square root (CP-JKU's value).
FREQ_MIXSTYLE_EPS = 1e-6
#: Bumped whenever the DIR features change their numbers, so old caches are not reused.
DIR_CODE_VERSION = 1
#: Seed of the impulse response each copy of each clip gets (fixed: every training seed shares the copies).
DIR_ASSIGNMENT_SEED = 0
IR_SUFFIX = ".wav"


class ImpulseResponseError(AscError):
    """A --dir-aug folder without usable impulse responses."""


# ----------------------------------------------------------------------------- Freq-MixStyle
def freq_mixstyle(x, *, lam, perm, eps: float = FREQ_MIXSTYLE_EPS):
    """Mix per-frequency statistics between clips (a TensorFlow graph function).

    Args:
        x: ``(batch, n_mels, n_frames, channels)`` float32 log-mel.
        lam: ``(batch,)`` float32 weights of each clip's own statistics.
        perm: ``(batch,)`` int32: clip ``i`` mixes with clip ``perm[i]``.
        eps: added to the variance.

    Returns:
        ``(batch, n_mels, n_frames, channels)`` float32: ``(x - mu) / sig * sig_mix + mu_mix`` with
        ``mu``, ``sig`` per clip and mel bin over frames and channels, and
        ``mu_mix = lam * mu + (1 - lam) * mu[perm]`` (``sig_mix`` alike).
    """
    import tensorflow as tf  # heavy: TensorFlow takes seconds to import

    x = tf.convert_to_tensor(x, tf.float32)
    n = tf.cast(tf.shape(x)[2] * tf.shape(x)[3], tf.float32)
    mu = tf.reduce_mean(x, axis=(2, 3), keepdims=True)
    var = tf.reduce_sum(tf.square(x - mu), axis=(2, 3), keepdims=True) / tf.maximum(n - 1.0, 1.0)
    sig = tf.sqrt(var + eps)
    mu, sig = tf.stop_gradient(mu), tf.stop_gradient(sig)
    lam = tf.reshape(tf.cast(lam, tf.float32), (-1, 1, 1, 1))
    mu_mix = lam * mu + (1.0 - lam) * tf.gather(mu, perm)
    sig_mix = lam * sig + (1.0 - lam) * tf.gather(sig, perm)
    return (x - mu) / sig * sig_mix + mu_mix


def random_freq_mixstyle(x, *, p: float, alpha: float):
    """:func:`freq_mixstyle` with probability ``p`` per batch, ``lam ~ Beta(alpha, alpha)`` per clip and
    a random permutation of the batch; else ``x`` unchanged. ``x``: ``(batch, mels, frames, ch)``."""
    import tensorflow as tf  # heavy: TensorFlow takes seconds to import

    x = tf.convert_to_tensor(x, tf.float32)
    b = tf.shape(x)[0]
    g1 = tf.random.gamma((b,), alpha)
    g2 = tf.random.gamma((b,), alpha)
    lam = g1 / (g1 + g2)
    perm = tf.random.shuffle(tf.range(b))
    return tf.cond(tf.random.uniform(()) < p, lambda: freq_mixstyle(x, lam=lam, perm=perm), lambda: x)


# ----------------------------------------------------------------------------- impulse responses
def convolve_ir(audio: np.ndarray, ir: np.ndarray) -> np.ndarray:
    """``audio`` ``(n,)`` convolved with ``ir`` ``(m,)``, the first ``n`` samples (the response starts at
    the clip's start, as a recording through the device would); float32 ``(n,)``."""
    import scipy.signal  # heavy: SciPy takes a second to import

    audio = np.asarray(audio, np.float64)
    out = scipy.signal.fftconvolve(audio, np.asarray(ir, np.float64), mode="full")[:len(audio)]
    return out.astype(np.float32)


def list_impulse_responses(folder: Path) -> list[Path]:
    """The ``*.wav`` files of ``folder``, sorted by name; an error naming the fix when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImpulseResponseError(f"--dir-aug: {folder} is not a folder; give a folder of impulse response WAV "
                                   "files (e.g. the MicIRP set, or <dataset>/impulse_responses of a generated dataset)")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == IR_SUFFIX and p.is_file())
    if not files:
        raise ImpulseResponseError(f"--dir-aug: {folder} holds no {IR_SUFFIX} files; put the impulse responses "
                                   "(one WAV each) there")
    return files


def wav_truncation(path: Path) -> tuple[int, int] | None:
    """``(declared, present)`` bytes of samples of a RIFF WAVE file whose ``data`` chunk is cut short
    (its header declares more than the file holds), else None: complete, of unknown length (a
    streaming writer's 0 or 0xFFFFFFFF), or not a RIFF WAVE file (libsndfile's reader judges those)."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk = f.read(8)
            n = int.from_bytes(chunk[4:], "little")
            if chunk[:4] == b"data":
                present = size - pos - 8
                return (n, present) if present < n < 0xFFFFFFFF else None
            pos += 8 + n + (n & 1)
    return None


def impulse_response_warnings(files: list[Path]) -> list[str]:
    """Suspect but usable impulse responses, each message naming the file: a truncated WAV (what is
    there is used, but the response is cut: the device's tail, or all but its start, is missing)."""
    out = []
    for path in files:
        cut = wav_truncation(path)
        if cut is not None:
            declared, present = cut
            out.append(f"--dir-aug: {path}: truncated: its header declares {declared:,d} bytes of samples but the file "
                       f"holds {present:,d} ({present / declared:.0%}); the response is used as far as it goes. "
                       "Replace it with a complete copy, or remove it")
    return out


def check_impulse_responses(folder: Path) -> list[Path]:
    """:func:`list_impulse_responses`, each file also read (they are small): before any work, a folder
    holding an unreadable, empty, silent or non-finite WAV is refused naming the file."""
    files = list_impulse_responses(folder)
    for path in files:
        load_impulse_response(path, sample_rate=None)
    return files


def load_impulse_response(path: Path, *, sample_rate: int | None) -> np.ndarray:
    """One impulse response, mono (channels averaged), resampled to ``sample_rate`` (None: as stored):
    float64 ``(m,)``."""
    try:
        data, sr = sf.read(str(path), dtype="float64", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as e:
        raise ImpulseResponseError(f"--dir-aug: {path} is not a readable WAV file ({e}); remove or replace it") from None
    ir = data.mean(axis=1)
    if sample_rate is not None and sr != sample_rate:
        import librosa  # heavy: librosa loads numba (seconds)

        ir = librosa.resample(ir, orig_sr=sr, target_sr=sample_rate)
    if ir.size == 0 or not np.isfinite(ir).all() or not np.any(ir):
        raise ImpulseResponseError(f"--dir-aug: {path} is empty, silent or non-finite; remove or replace it")
    return ir


def simulated_device_irs(*, count: int = 4, sample_rate: int = 44100, seed: int = 0,
                         length_seconds: float = 0.012) -> list[np.ndarray]:
    """``count`` simulated device impulse responses, float32 ``(round(length_seconds * sample_rate),)``
    each: a direct path of 1 at sample 0, a few housing reflections, then a band-pass (80-400 Hz
    high-pass, 5-16 kHz low-pass) and three capsule resonances/dips applied in the frequency domain.
    Deterministic in ``seed``."""
    m = int(round(length_seconds * sample_rate))
    out = []
    for k in range(count):
        rng = np.random.default_rng([seed, k, 0x1D1])
        ir = np.zeros(m)
        ir[0] = 1.0
        for _ in range(5):
            ir[rng.integers(20, m)] += rng.uniform(-0.5, 0.5)
        f = np.fft.rfftfreq(m, 1 / sample_rate)
        hp, lp = rng.uniform(80, 400), rng.uniform(5000, 16000)
        gain = 1 / np.sqrt(1 + (hp / np.maximum(f, 1)) ** 4) / np.sqrt(1 + (f / lp) ** 6)
        for _ in range(3):
            fc, g_db, q = rng.uniform(300, 6000), rng.uniform(-9, 9), rng.uniform(1, 4)
            gain *= 10 ** (g_db / 20 * np.exp(-(np.log2(np.maximum(f, 1) / fc) * q) ** 2))
        y = np.fft.irfft(np.fft.rfft(ir) * gain, m)
        out.append((y / np.max(np.abs(y))).astype(np.float32))
    return out


def write_simulated_irs(folder: Path, *, count: int = 4, sample_rate: int = 44100, seed: int = 0) -> list[Path]:
    """Write :func:`simulated_device_irs` as ``folder/sim_device_<k>.wav`` (24-bit PCM: libsndfile stamps float WAVs
    with the time in a PEAK chunk, which would break same-seed-same-bytes); returns the paths.
    ``folder`` is created; it must not hold these files already (a generated dataset's staging folder)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, ir in enumerate(simulated_device_irs(count=count, sample_rate=sample_rate, seed=seed)):
        path = folder / f"sim_device_{k}.wav"
        sf.write(path, ir, sample_rate, subtype="PCM_24", format="WAV")
        paths.append(path)
    return paths


# ----------------------------------------------------------------------------- DIR feature copies
@dataclasses.dataclass(frozen=True)
class DirFeatures:
    """A complete DIR cache entry: ``train.npy`` float32 ``(n_train, copies, n_mels, n_frames)`` dB."""

    path: Path
    config: dict

    def features(self) -> np.ndarray:
        return np.load(self.path / "train.npy", mmap_mode="r")


def _dir_chunk(paths: list[str], hashes: list[str], irs: list[np.ndarray], assignment: np.ndarray,
               config_dict: dict) -> np.ndarray:
    config = FeatureConfig.from_dict(config_dict)
    out = np.empty((len(paths), assignment.shape[1], *config.shape), np.float32)
    for i, (p, h) in enumerate(zip(paths, hashes)):
        if artifacts.sha256_file(Path(p)) != h:
            raise AscError(f"{p}: the audio changed since its features were cached; compute the features again "
                           "(`asc features`) before training with --dir-aug")
        audio = load_audio(p, sample_rate=config.sample_rate, clip_seconds=config.clip_seconds, warnings=[])
        for k, j in enumerate(assignment[i]):
            out[i, k] = log_mel(convolve_ir(audio, irs[j]), config=config)
    return out


def dir_feature_cache(fs, *, folder: Path, copies: int, seed: int = DIR_ASSIGNMENT_SEED,
                      workers: int = DEFAULT_WORKERS, log=print) -> DirFeatures:
    """The DIR-convolved log-mel copies of ``fs``'s training clips (a :class:`keras_asc.feature_cache.FeatureSet`),
    computed once into ``WORK/dir_features/<key>/`` beside the feature cache (``WORK/features/<key>``).

    Copy ``k`` of clip ``i`` uses impulse response ``assignment[i, k]``, drawn by
    ``numpy.random.default_rng([seed, i, k])``; ``config.json`` records the assignment and every
    response file's sha256.
    """
    files = list_impulse_responses(folder)
    config = fs.feature_config
    table = fs.table("train")
    if "sha256" not in table:
        raise AscError(f"{fs.path}: the feature cache predates audio hashes; compute it again with `asc features`")
    ir_hashes = {p.name: artifacts.sha256_file(p) for p in files}
    payload = {"version": DIR_CODE_VERSION, "features": config.to_dict(), "impulse_responses": ir_hashes,
               "audio": artifacts.sha256_bytes("\n".join(table["sha256"]).encode()), "copies": copies, "seed": seed}
    key = artifacts.sha256_bytes(json.dumps(payload, sort_keys=True).encode())[:16]
    final = Path(fs.path).parent.parent / "dir_features" / key
    if (final / "config.json").is_file():
        log(f"dir-aug: reusing {final}")
        return DirFeatures(final, artifacts.read_json(final / "config.json"))
    irs = [load_impulse_response(p, sample_rate=config.sample_rate) for p in files]
    n = len(table)
    assignment = np.array([[np.random.default_rng([seed, i, k]).integers(len(irs)) for k in range(copies)]
                           for i in range(n)], np.int64).reshape(n, copies)
    log(f"dir-aug: {copies} impulse-response copies of {n} training clips ({len(irs)} responses in {folder}) "
        f"into {final}")
    chunk = 8
    starts = list(range(0, n, chunk))
    paths, hashes = table["path"].tolist(), table["sha256"].tolist()
    calls = [(paths[s:s + chunk], hashes[s:s + chunk], irs, assignment[s:s + chunk], config.to_dict()) for s in starts]
    with artifacts.staging_dir(final, stage="dir-features", inputs=(Path(folder),), set_aside=True) as tmp:
        arr = np.lib.format.open_memmap(tmp / "train.npy", mode="w+", dtype=np.float32, shape=(n, copies, *config.shape))
        for k, block in parallel_map(_dir_chunk, calls, workers=workers, desc="dir-aug log-mel", unit="clip",
                                     sizes=[len(c[0]) for c in calls]):
            arr[starts[k]:starts[k] + len(block)] = block
        if not np.isfinite(arr).all():
            raise AscError(f"--dir-aug: non-finite features from the responses in {folder}; check the WAV files")
        arr.flush()
        del arr
        artifacts.write_json(tmp / "config.json", {"stage": "dir-features", "key": key, "feature_cache": fs.config["key"],
                                                   **payload, "assignment": assignment.tolist(),
                                                   **artifacts.provenance()})
    return DirFeatures(final, artifacts.read_json(final / "config.json"))
