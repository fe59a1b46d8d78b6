"""A damaged cache entry (a truncated, corrupted or missing .npy) is detected on reuse, named in a
warning, and computed again: never a traceback, never silently used."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from keras_asc import artifacts
from keras_asc.feature_cache import build_feature_cache, damaged_entry


@pytest.fixture
def entry_copy(tiny_dataset, tiny_features, tmp_path):
    """A copy of the tiny feature cache entry under a fresh work folder (the session's stays intact)."""
    dst = tmp_path / "features" / tiny_features.path.name
    shutil.copytree(tiny_features.path, dst)
    return tmp_path, dst


def _reuse(tiny_dataset, work, cfg):
    messages = []
    fs = build_feature_cache(tiny_dataset, work, config=cfg, workers=1, log=messages.append)
    return fs, messages


def test_an_intact_entry_is_reused(tiny_dataset, tiny_features, entry_copy):
    work, entry = entry_copy
    assert damaged_entry(entry) == []
    fs, messages = _reuse(tiny_dataset, work, tiny_features.feature_config)
    assert fs.path == entry and "reusing" in messages[0]


def test_a_truncated_array_is_named_and_recomputed(tiny_dataset, tiny_features, entry_copy):
    work, entry = entry_copy
    f = entry / "evaluate.npy"
    f.write_bytes(f.read_bytes()[:-1000])
    assert any(str(f) in p and "truncated" in p for p in damaged_entry(entry))
    fs, messages = _reuse(tiny_dataset, work, tiny_features.feature_config)
    assert any("damaged" in m and str(f) in m for m in messages)
    np.testing.assert_array_equal(fs.features("evaluate"), tiny_features.features("evaluate"))
    assert damaged_entry(entry) == []


def test_a_corrupted_byte_of_the_same_size_is_caught_by_its_hash(tiny_dataset, tiny_features, entry_copy):
    work, entry = entry_copy
    f = entry / "train.npy"
    raw = bytearray(f.read_bytes())
    raw[-7] ^= 0x40  # one bit of one float
    f.write_bytes(bytes(raw))
    assert any(str(f) in p and "sha256" in p for p in damaged_entry(entry))
    fs, _ = _reuse(tiny_dataset, work, tiny_features.feature_config)
    np.testing.assert_array_equal(fs.features("train"), tiny_features.features("train"))


def test_an_entry_without_the_record_still_catches_a_truncated_file(tiny_dataset, tiny_features, entry_copy):
    """Entries written before the size and sha256 record: np.load's own failure is caught, no traceback."""
    work, entry = entry_copy
    config = artifacts.read_json(entry / "config.json")
    del config["arrays"]
    artifacts.write_json(entry / "config.json", config)
    f = entry / "evaluate.npy"
    f.write_bytes(f.read_bytes()[:200])
    assert any(str(f) in p and "not a readable .npy" in p for p in damaged_entry(entry))
    fs, messages = _reuse(tiny_dataset, work, tiny_features.feature_config)
    assert any("damaged" in m for m in messages)
    np.testing.assert_array_equal(fs.features("evaluate"), tiny_features.features("evaluate"))


def test_a_missing_array_is_named(tiny_features, entry_copy):
    _, entry = entry_copy
    (entry / "train.npy").unlink()
    assert damaged_entry(entry) == [f"{entry / 'train.npy'} is missing"]
