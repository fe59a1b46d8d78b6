"""Cached log-mel features for the fold1 train and evaluate splits.

Layout of one cache entry, ``WORK/features/<key>/``::

    config.json      feature parameters, normalization (fitted on train), labels, file-list hashes
    train.npy        float32 (n_train, n_mels, n_frames), un-normalized dB
    train.csv        the clip table of :func:`keras_asc.dataset.read_split`, same row order, plus
                     ``sha256``: the content hash of the audio each row's features were computed from
    evaluate.npy / evaluate.csv

The key hashes every feature parameter plus each split's file list (names and byte sizes), so a
changed parameter or file list lands in a new entry. An entry is built in a temp folder and
renamed into place when complete: an interrupted run never leaves one that looks finished.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from keras_asc import artifacts
from keras_asc.audio import load_audio
from keras_asc.dataset import SCENE_LABELS, read_fold1, split_warnings
from keras_asc.parallel import DEFAULT_WORKERS, parallel_map
from keras_asc.features import FeatureConfig, Normalization, log_mel, mel_filterbank

CACHED_SPLITS = ("train", "evaluate")


@dataclasses.dataclass(frozen=True)
class FeatureSet:
    """A complete cache entry. Arrays are opened memory-mapped on demand."""

    path: Path
    config: dict

    @property
    def feature_config(self) -> FeatureConfig:
        return FeatureConfig.from_dict(self.config["features"])

    @property
    def normalization(self) -> Normalization:
        return Normalization.from_dict(self.config["normalization"])

    def features(self, split: str) -> np.ndarray:
        """Shape ``(n_clips, n_mels, n_frames)``, float32 dB, memory-mapped read-only."""
        return np.load(self.path / f"{split}.npy", mmap_mode="r")

    def table(self, split: str) -> pd.DataFrame:
        return pd.read_csv(self.path / f"{split}.csv", dtype={"device": str, "location": str})

    @classmethod
    def open(cls, path: Path) -> "FeatureSet":
        path = Path(path)
        return cls(path, artifacts.read_json(path / "config.json"))


def _file_list_digest(table: pd.DataFrame) -> str:
    """Name, size and modification time (ns) of every file: a clip replaced by other audio of
    the same size (all TAU clips have one size) changes the key, without reading every byte."""
    rows = []
    for f, p in zip(table["filename"], table["path"]):
        st = os.stat(p)
        rows.append(f"{f}\t{st.st_size}\t{st.st_mtime_ns}")
    return artifacts.sha256_bytes("\n".join(rows).encode())


MAX_WARNINGS_LOGGED = 10

#: Bumped whenever the feature computation changes its numbers, so old caches are not reused.
#: 2: mel projection in float64 (bit-identical for any number of workers).
#: 3: the clip tables record each audio file's sha256 (``sha256`` column).
FEATURE_CODE_VERSION = 3


def cache_key(config: FeatureConfig, tables: dict[str, pd.DataFrame]) -> str:
    payload = {"version": FEATURE_CODE_VERSION, "features": config.to_dict(), "labels": SCENE_LABELS,
               "files": {s: _file_list_digest(t) for s, t in sorted(tables.items())}}
    return artifacts.sha256_bytes(json.dumps(payload, sort_keys=True).encode())[:16]


_WORKER: dict = {}


def _init_extraction(config_dict: dict, mel_basis: np.ndarray) -> None:
    """Each worker gets the mel filterbank from its parent: it never loads librosa (seconds per process)."""
    _WORKER["config"], _WORKER["mel_basis"] = FeatureConfig.from_dict(config_dict), mel_basis


def _extract_chunk(paths: list[str]) -> tuple[np.ndarray, list[str], list[str]]:
    config, basis = _WORKER["config"], _WORKER["mel_basis"]
    out = np.empty((len(paths), *config.shape), np.float32)
    warnings: list[str] = []
    hashes = []
    for i, p in enumerate(paths):
        audio = load_audio(p, sample_rate=config.sample_rate, clip_seconds=config.clip_seconds, warnings=warnings)
        out[i] = log_mel(audio, config=config, mel_basis=basis)
        hashes.append(artifacts.sha256_file(Path(p)))  # the bytes were just read: in the page cache
    return out, warnings, hashes


@dataclasses.dataclass(frozen=True)
class ExtractionJob:
    """One list of files and the array their log-mels go to (row i: ``paths[i]``)."""

    paths: list[str]
    out: np.ndarray  # (len(paths), n_mels, n_frames) float32, e.g. a memory-mapped .npy
    audio_sha256: list[str] | None = None  # filled with each file's sha256 (hex), in file order


def extract_jobs(jobs: list[ExtractionJob], *, config: FeatureConfig, workers: int = DEFAULT_WORKERS,
                 chunk: int = 8, desc: str = "log-mel") -> list[list[str]]:
    """Every job's log-mels in one pool of ``workers`` processes (one start-up each, whatever the number of
    jobs); returns each job's suspect-audio warnings (:func:`keras_asc.audio.audio_warnings`), in file order.

    ``workers=1`` runs in this process. Worker processes are spawned (not forked) so a parent
    that already imported TensorFlow is safe."""
    calls, where = [], []
    for j, job in enumerate(jobs):
        for i in range(0, len(job.paths), chunk):
            calls.append((job.paths[i:i + chunk],))
            where.append((j, i))
    warnings: dict[int, list[str]] = {}
    hashes: dict[int, list[str]] = {}
    for k, (features, warnings[k], hashes[k]) in parallel_map(
            _extract_chunk, calls, workers=workers, desc=desc, unit="clip", sizes=[len(c[0]) for c in calls],
            initializer=_init_extraction, initargs=(config.to_dict(), mel_filterbank(config))):
        j, i = where[k]
        jobs[j].out[i:i + len(features)] = features
    for j, job in enumerate(jobs):
        if job.audio_sha256 is not None:
            job.audio_sha256[:] = [h for k in range(len(calls)) if where[k][0] == j for h in hashes[k]]
    return [[w for k in range(len(calls)) if where[k][0] == j for w in warnings[k]] for j in range(len(jobs))]


def extract_features(paths: list[str], *, config: FeatureConfig, out: np.ndarray,
                     workers: int = DEFAULT_WORKERS, chunk: int = 8, desc: str = "log-mel",
                     audio_sha256: list[str] | None = None) -> list[str]:
    """Fill ``out[i]`` with the log-mel of ``paths[i]`` using ``workers`` processes; returns the
    suspect-audio warnings (:func:`keras_asc.audio.audio_warnings`), in file order. When given,
    ``audio_sha256`` is filled with each file's sha256 (hex), in file order: what the features
    were computed from, by content. One job of :func:`extract_jobs`."""
    (warnings,) = extract_jobs([ExtractionJob(paths, out, audio_sha256)], config=config, workers=workers,
                               chunk=chunk, desc=desc)
    return warnings


def build_feature_cache(data_dir: Path, work_dir: Path, *, config: FeatureConfig,
                        workers: int = DEFAULT_WORKERS, log=print, train_split: str | None = None) -> FeatureSet:
    """Return the cache entry for (dataset, config), computing it only if it is not complete.
    ``train_split`` (TAU 2022 layout): the train split is that DCASE 2024 subset
    (:func:`keras_asc.dataset.read_train_split`); its file list is in the key like any other."""
    tables = read_fold1(data_dir, train_split=train_split)
    key = cache_key(config, tables)
    final = Path(work_dir) / "features" / key
    if (final / "config.json").is_file():
        problems = damaged_entry(final)
        if not problems:
            log(f"features: reusing cache {final}")
            fs = FeatureSet.open(final)
            _log_warnings(fs.config.get("warnings", []), final, log)  # data warnings every time, not only once
            return fs
        log(f"features: warning: the cache entry {final} is damaged, so it is computed again: {'; '.join(problems)}")
    log(f"features: computing {sum(len(t) for t in tables.values())} clips into {final}")
    warnings = split_warnings(Path(data_dir), tables)
    arrays: dict[str, dict] = {}
    with artifacts.staging_dir(final, stage="features", inputs=(Path(data_dir),), set_aside=True) as tmp:  # a cache
        jobs = [ExtractionJob(tables[split]["path"].tolist(), np.lib.format.open_memmap(
            tmp / f"{split}.npy", mode="w+", dtype=np.float32, shape=(len(tables[split]), *config.shape)), [])
            for split in CACHED_SPLITS]
        for w in extract_jobs(jobs, config=config, workers=workers, desc=f"log-mel {' + '.join(CACHED_SPLITS)}"):
            warnings += w  # one pool for every split: each worker starts once
        for split, job in zip(CACHED_SPLITS, jobs):
            arr = job.out
            if not np.isfinite(arr).all():
                raise ValueError(f"non-finite features in split {split}; check the audio files")
            arr.flush()
            del arr
            arrays[split] = _array_record(tmp / f"{split}.npy")
            tables[split].assign(sha256=job.audio_sha256).to_csv(tmp / f"{split}.csv", index=False)
        del jobs
        norm = Normalization.fit(np.load(tmp / "train.npy", mmap_mode="r"))
        artifacts.write_json(tmp / "config.json", {
            "arrays": arrays,  # each .npy's size and sha256 as written, checked on every reuse (damaged_entry)
            "stage": "features",
            "key": key,
            "data_dir": str(Path(data_dir).resolve()),
            "features": config.to_dict(),
            "shape": list(config.shape),
            "labels": list(SCENE_LABELS),
            "normalization": norm.to_dict(),
            "clips": {s: len(tables[s]) for s in CACHED_SPLITS},
            "train_split": None if train_split is None else str(train_split),
            "file_lists": {s: _file_list_digest(tables[s]) for s in CACHED_SPLITS},
            "warnings": warnings,
            **artifacts.provenance(),
        })
    _log_warnings(warnings, final, log)
    return FeatureSet.open(final)


def _array_record(path: Path) -> dict:
    return {"bytes": path.stat().st_size, "sha256": artifacts.sha256_file(path)}


def damaged_entry(path: Path) -> list[str]:
    """What is wrong with a complete-looking cache entry (its ``config.json`` exists), one sentence per
    file naming it: an unreadable config.json; a split's .npy missing, of another byte size or content
    (sha256) than written (entries from before the record: another shape or dtype than the config says,
    or not a readable .npy, e.g. truncated). Empty when the entry can be used."""
    path = Path(path)
    try:
        config = artifacts.read_json(path / "config.json")
        shape, clips = tuple(config["shape"]), config["clips"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return [f"{path / 'config.json'} is unreadable ({e})"]
    problems = []
    for split in CACHED_SPLITS:
        f = path / f"{split}.npy"
        rec = (config.get("arrays") or {}).get(split)
        if not f.is_file():
            problems.append(f"{f} is missing")
            continue
        if rec and f.stat().st_size != rec.get("bytes"):
            problems.append(f"{f} has {f.stat().st_size:,d} bytes, {rec.get('bytes'):,d} were written (truncated or "
                            "replaced)")
            continue
        try:
            arr = np.load(f, mmap_mode="r")
            ok = arr.shape == (int(clips[split]), *shape) and arr.dtype == np.float32
            what = f"shape {arr.shape} {arr.dtype}"
            del arr
        except (OSError, ValueError, EOFError, KeyError, TypeError) as e:
            problems.append(f"{f} is not a readable .npy ({e})")
            continue
        if not ok:
            problems.append(f"{f} holds {what}, not ({clips[split]}, {', '.join(map(str, shape))}) float32")
        elif rec and artifacts.sha256_file(f) != rec.get("sha256"):
            problems.append(f"{f} holds other bytes than were written (sha256 differs: corrupted or edited)")
    return problems


def _log_warnings(warnings: list[str], final: Path, log) -> None:
    for w in warnings[:MAX_WARNINGS_LOGGED]:
        log(f"features: warning: {w}")
    if len(warnings) > MAX_WARNINGS_LOGGED:
        log(f"features: ... {len(warnings) - MAX_WARNINGS_LOGGED} more warning(s) in {final / 'config.json'}")
