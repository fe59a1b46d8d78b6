"""Feature extraction throughput (clips/s) with 1 and 2 worker processes, in one run, and where a clip's
time goes.

    .venv/bin/python benchmarks/bench_features.py [--data DIR] [--clips N] [--profile-clips M]

Without --data it generates the demo dataset into work/bench-data (and reports how long that
took). Prints clips/s per worker count and the speed-up ratio, both measured in this run, then the CPU
time per clip of each part (reading and checking the audio, STFT, power, mel projection, log, the audio's
sha256) on ``--profile-clips`` clips in this process, librosa's STFT beside the NumPy one the features use,
and the CPU time of one worker's start-up (spawn, imports, the initializer): what `asc features` pays once
per worker. CPU seconds do not count waiting for a loaded machine's cores; wall times do.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np


def profile_parts(paths: list[str], *, config) -> dict[str, float]:
    """CPU ms per clip of each part of :func:`keras_asc.feature_cache._extract_chunk`, in this process."""
    import librosa  # heavy: only to time its STFT beside ours

    from keras_asc import artifacts
    from keras_asc.audio import load_audio
    from keras_asc.features import mel_filterbank, stft

    basis = mel_filterbank(config)
    cpu = time.process_time
    parts = dict.fromkeys(("read_and_check", "stft_numpy", "stft_librosa", "power", "mel", "log", "sha256"), 0.0)
    librosa.stft(np.zeros(config.n_samples, np.float32), n_fft=config.n_fft, hop_length=config.hop_length)  # warm
    for p in paths:
        t = cpu()
        audio = load_audio(p, sample_rate=config.sample_rate, clip_seconds=config.clip_seconds, warnings=[])
        parts["read_and_check"] += cpu() - t
        t = cpu()
        spec = stft(audio, n_fft=config.n_fft, hop_length=config.hop_length)
        parts["stft_numpy"] += cpu() - t
        t = cpu()
        librosa.stft(audio, n_fft=config.n_fft, hop_length=config.hop_length, window="hann", center=True,
                     pad_mode="constant")
        parts["stft_librosa"] += cpu() - t
        t = cpu()
        power = np.abs(spec).astype(np.float64) ** 2
        parts["power"] += cpu() - t
        t = cpu()
        mel = basis @ power
        parts["mel"] += cpu() - t
        t = cpu()
        (10.0 * np.log10(np.maximum(mel, 1e-10))).astype(np.float32)
        parts["log"] += cpu() - t
        t = cpu()
        artifacts.sha256_file(Path(p))
        parts["sha256"] += cpu() - t
    return {k: round(1000 * v / len(paths), 2) for k, v in parts.items()}


def worker_start_cpu(*, config) -> float:
    """CPU seconds of starting one feature worker and running its first clip-free call (children's rusage)."""
    from keras_asc.feature_cache import _init_extraction
    from keras_asc.features import mel_filterbank
    from keras_asc.parallel import parallel_map

    before = os.times()
    list(parallel_map(len, [("",)] * 2, workers=2, desc="start", unit="call", initializer=_init_extraction,
                      initargs=(config.to_dict(), mel_filterbank(config))))
    after = os.times()
    return round(((after.children_user - before.children_user) + (after.children_system - before.children_system)) / 2,
                 2)


def main() -> None:
    from keras_asc.dataset import read_split
    from keras_asc.feature_cache import extract_features
    from keras_asc.features import FeatureConfig
    from keras_asc.synth import make_dataset

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path)
    ap.add_argument("--clips", type=int, default=600)
    ap.add_argument("--profile-clips", type=int, default=40)
    a = ap.parse_args()
    if a.data is None:
        a.data = Path("work/bench-data/demo")
        t = time.perf_counter()
        make_dataset(a.data, size="demo", seed=0, workers=2)
        print(f"make-dataset demo (or reuse): {time.perf_counter() - t:.1f} s")
    available = read_split(a.data, "train")["path"].tolist()
    paths = [available[i % len(available)] for i in range(a.clips)]  # repeat if the set is small
    cfg = FeatureConfig.seed()
    rates = {}
    for workers in (1, 2):
        out = np.empty((len(paths), *cfg.shape), np.float32)
        t, cpu = time.perf_counter(), time.process_time()
        extract_features(paths, config=cfg, out=out, workers=workers)
        wall = time.perf_counter() - t
        rates[workers] = len(paths) / wall
        busy = f"; this process used {(time.process_time() - cpu) / wall:.2f} cores" if workers == 1 else ""
        print(f"workers={workers}: {rates[workers]:.1f} clips/s ({len(paths)} clips of {cfg.clip_seconds:g} s){busy}")
    print(f"speed-up 2 vs 1 workers: {rates[2] / rates[1]:.2f}x")
    parts = profile_parts(paths[:a.profile_clips], config=cfg)
    used = sum(v for k, v in parts.items() if k != "stft_librosa")
    print(f"CPU ms per clip, in one process ({a.profile_clips} clips): {parts}; the features' parts sum to "
          f"{used:.1f} ms (librosa's STFT is timed beside, not used)")
    print(f"one worker's start-up: {worker_start_cpu(config=cfg)} CPU-s (spawn, imports, the mel filterbank)")


if __name__ == "__main__":
    main()
