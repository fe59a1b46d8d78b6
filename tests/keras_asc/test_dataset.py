import pandas as pd
import pytest

from keras_asc.dataset import (DEVICES, SCENE_LABELS, TABLE_COLUMNS, UNSEEN_DEVICES, DatasetError,
                               describe, read_fold1, read_split)
from tests.conftest import copy_dataset


def _edit(path, fn):
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    fn(df).to_csv(path, sep="\t", index=False)


def test_reader_tables(tiny_dataset):
    tables = read_fold1(tiny_dataset)
    meta = pd.read_csv(tiny_dataset / "meta.csv", sep="\t")
    for split, t in tables.items():
        assert tuple(t.columns) == TABLE_COLUMNS
        listed = pd.read_csv(tiny_dataset / "evaluation_setup" / f"fold1_{split}.csv", sep="\t")
        assert len(t) == len(listed)  # counts come from the files
        assert t["path"].map(lambda p: p.startswith("/")).all()
        assert (t["label"] == t["scene_label"].map(SCENE_LABELS.index)).all()
        assert set(t["device"]) <= set(DEVICES)
    # device and location come from meta.csv, not from file names
    row = tables["train"].iloc[0]
    m = meta.set_index("filename").loc[row["filename"]]
    assert (row["device"], row["location"]) == (m["source_label"], m["identifier"])
    assert not (set(tables["train"]["device"]) & UNSEEN_DEVICES)
    assert UNSEEN_DEVICES <= set(tables["evaluate"]["device"])
    text = describe(tables)
    assert "s6" in text and "street_traffic" in text


def test_missing_audio_named(tiny_dataset, tmp_path):
    root = copy_dataset(tiny_dataset, tmp_path / "d")
    victims = sorted((root / "audio").glob("*-a.wav"))[:4]
    for v in victims:
        v.unlink()
    with pytest.raises(DatasetError, match=r"audio file\(s\) missing") as e:
        read_fold1(root)
    assert victims[0].name in str(e.value) and "fold1_" in str(e.value)


def test_unknown_label(tiny_dataset, tmp_path):
    root = copy_dataset(tiny_dataset, tmp_path / "d")
    _edit(root / "meta.csv", lambda df: df.replace({"scene_label": {"park": "garden"}}))
    with pytest.raises(DatasetError, match="unknown scene label.*garden"):
        read_split(root, "train")


def test_misnamed_column(tiny_dataset, tmp_path):
    root = copy_dataset(tiny_dataset, tmp_path / "d")
    path = root / "evaluation_setup" / "fold1_train.csv"
    _edit(path, lambda df: df.rename(columns={"scene_label": "scene"}))
    with pytest.raises(DatasetError, match=r"fold1_train.csv: missing column\(s\) \['scene_label'\]"):
        read_split(root, "train")


def test_location_leakage(tiny_dataset, tmp_path):
    root = copy_dataset(tiny_dataset, tmp_path / "d")
    ev = read_split(root, "evaluate")
    moved = ev["filename"].iloc[0]
    _edit(root / "evaluation_setup" / "fold1_train.csv",
          lambda df: pd.concat([df, pd.DataFrame({"filename": [moved], "scene_label": [ev["scene_label"].iloc[0]]})]))
    with pytest.raises(DatasetError, match="appear in both"):
        read_fold1(root)


def test_missing_split_file(tiny_dataset, tmp_path):
    root = copy_dataset(tiny_dataset, tmp_path / "d")
    (root / "evaluation_setup" / "fold1_evaluate.csv").unlink()
    with pytest.raises(DatasetError, match="fold1_evaluate.csv: file not found"):
        read_fold1(root)
