import hashlib

import pandas as pd
import soundfile as sf

from keras_asc.dataset import UNSEEN_DEVICES, read_fold1
from keras_asc.synth import make_dataset

QUIET = dict(log=lambda *_: None)


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name not in ("synth_config.json", ".asc-stage.json"):  # records of where and when
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_any_workers(tmp_path):
    a = make_dataset(tmp_path / "a", size="3", seed=7, clip_seconds=0.5, workers=1, **QUIET)
    b = make_dataset(tmp_path / "b", size="3", seed=7, clip_seconds=0.5, workers=2, **QUIET)
    c = make_dataset(tmp_path / "c", size="3", seed=8, clip_seconds=0.5, workers=2, **QUIET)
    assert _digest(a) == _digest(b) != _digest(c)


def test_layout(tiny_dataset):
    root = tiny_dataset
    meta = pd.read_csv(root / "meta.csv", sep="\t")
    assert list(meta.columns) == ["filename", "scene_label", "identifier", "source_label"]
    for split, cols in (("train", ["filename", "scene_label"]), ("evaluate", ["filename", "scene_label"]),
                        ("test", ["filename"])):
        assert list(pd.read_csv(root / "evaluation_setup" / f"fold1_{split}.csv", sep="\t").columns) == cols
    info = sf.info(root / meta["filename"].iloc[0])
    assert (info.samplerate, info.channels, info.subtype) == (44100, 1, "PCM_24")
    tables = read_fold1(root)  # also checks no location crosses splits
    train, ev = tables["train"], tables["evaluate"]
    assert set(train["device"]) == {"a", "b", "c", "s1", "s2", "s3"}
    assert UNSEEN_DEVICES <= set(ev["device"])
    assert (train["device"] == "a").mean() > 0.5
    assert not set(train["location"]) & set(ev["location"])
    assert train["scene_label"].nunique() == ev["scene_label"].nunique() == 10


def test_refuses_to_overwrite(tiny_dataset, tmp_path):
    import pytest

    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        make_dataset(tmp_path / "x", size="tiny", **QUIET)
    assert (tmp_path / "x" / "keep.txt").read_text() == "mine"
    # the finished tiny dataset is reused, not regenerated
    assert make_dataset(tiny_dataset, size="tiny", seed=0, **QUIET) == tiny_dataset
