"""The TAU 2020 and 2022 layouts and the DCASE 2024 training subsets (keras_asc.layouts, dataset).

Readers are tested on shipped copies of generated metadata (``layout_copies/``, no audio)."""
import shutil
from pathlib import Path

import pandas as pd
import pytest

from keras_asc.dataset import DatasetError, dataset_layout, read_fold1, read_split, read_train_split
from keras_asc.layouts import LAYOUTS, TRAIN_SPLITS, LayoutError, layout_for_clip_seconds

COPIES = Path(__file__).parent / "layout_copies"


def _copy(name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(COPIES / name, tmp_path / name))


def _tsv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype=str)


@pytest.mark.parametrize("name", ["tau2020", "tau2022"])
def test_each_layout_is_detected_and_read(name):
    root = COPIES / name
    assert dataset_layout(root) is LAYOUTS[name]
    tables = read_fold1(root, check_audio=False)
    for split, table in tables.items():
        assert list(table["filename"]) == list(_tsv(root / "evaluation_setup" / f"fold1_{split}.csv")["filename"])
    assert LAYOUTS[name].clip_seconds == (1.0 if name == "tau2022" else 10.0)


def test_2022_names_parse_to_segments_of_ten_second_recordings():
    lay = LAYOUTS["tau2022"]
    assert lay.segment_of("audio/airport-lisbon-1000-40000-0-a.wav") == "airport-lisbon-1000-40000"
    assert lay.filename(scene="airport", city="lisbon", location=1000, segment=40000, part=3, device="s1") \
        == "audio/airport-lisbon-1000-40000-3-s1.wav"
    with pytest.raises(LayoutError, match="airport-lisbon-1000-40000-0-a.wav"):
        LAYOUTS["tau2020"].segment_of("audio/airport-lisbon-1000-40000-0-a.wav")


def test_train_split_is_read_from_its_file():
    root = COPIES / "tau2022"
    tables = read_fold1(root, check_audio=False, train_split=25)
    listed = _tsv(root / "split_setup" / "split25.csv")
    assert list(tables["train"]["filename"]) == list(listed["filename"])
    assert tables["train"].attrs["source"] == str((root / "split_setup" / "split25.csv").resolve())
    full = read_split(root, "train", check_audio=False)
    assert set(tables["train"]["filename"]) < set(full["filename"])
    # a path works as well as a percentage, and split100 is the whole train split
    by_path = read_train_split(root, str(root / "split_setup" / "split25.csv"), check_audio=False)
    assert list(by_path["filename"]) == list(listed["filename"])
    assert set(read_train_split(root, "100", check_audio=False)["filename"]) == set(full["filename"])


def test_shipped_subsets_are_nested_whole_segments_with_every_scene():
    root = COPIES / "tau2022"
    lay = LAYOUTS["tau2022"]
    files = {p: set(_tsv(root / "split_setup" / f"split{p}.csv")["filename"]) for p in TRAIN_SPLITS}
    for small, big in zip(TRAIN_SPLITS, TRAIN_SPLITS[1:]):
        assert files[small] <= files[big]
    meta = _tsv(root / "meta.csv")
    for p, names in files.items():
        segments = {lay.segment_of(f) for f in names}
        whole = {f for f in meta["filename"] if lay.segment_of(f) in segments}
        train = set(_tsv(root / "evaluation_setup" / "fold1_train.csv")["filename"])
        assert names == whole & train  # a segment is in a subset wholly or not at all
        assert len(set(meta.set_index("filename").loc[sorted(names), "scene_label"])) == 10


def test_unknown_split_is_refused_with_the_choices(tmp_path):
    with pytest.raises(LayoutError, match=r"--train-split 30: DCASE 2024 has no 30 % subset; choose one of "
                                          r"5, 10, 25, 50, 100") as e:
        read_fold1(COPIES / "tau2022", check_audio=False, train_split=30)
    assert "\n" not in str(e.value)


def test_missing_split_file_names_where_it_was_looked_for(tmp_path):
    root = _copy("tau2022", tmp_path)
    (root / "split_setup" / "split10.csv").unlink()
    with pytest.raises(LayoutError, match=r"split10.csv not found .*split_setup/split10.csv.*Download") as e:
        read_fold1(root, check_audio=False, train_split="10")
    assert "\n" not in str(e.value)


def test_split_file_missing_a_column_names_file_and_fix(tmp_path):
    root = _copy("tau2022", tmp_path)
    path = root / "split_setup" / "split25.csv"
    _tsv(path).rename(columns={"scene_label": "label"}).to_csv(path, sep="\t", index=False)
    with pytest.raises(DatasetError, match=r"split25.csv: missing column\(s\) \['scene_label'\].*header row") as e:
        read_fold1(root, check_audio=False, train_split=25)
    assert "\n" not in str(e.value)


def test_split_listing_an_evaluate_clip_is_refused(tmp_path):
    root = _copy("tau2022", tmp_path)
    path = root / "split_setup" / "split5.csv"
    ev = _tsv(root / "evaluation_setup" / "fold1_evaluate.csv").iloc[:1]
    pd.concat([_tsv(path), ev]).to_csv(path, sep="\t", index=False)
    with pytest.raises(DatasetError, match=r"split5.csv: 1 clip\(s\) not in .*fold1_train.csv.*leak"):
        read_train_split(root, 5, check_audio=False)


def test_train_split_of_a_2020_layout_is_refused():
    with pytest.raises(LayoutError, match=r"--train-split 25: .*2020 Mobile \(10 s clips\) layout.*TAU 2022"):
        read_fold1(COPIES / "tau2020", check_audio=False, train_split=25)


def test_names_of_no_single_layout_are_refused(tmp_path):
    root = _copy("tau2022", tmp_path)
    meta = _tsv(root / "meta.csv")
    meta.loc[0, "filename"] = "audio/airport-amsterdam-0-0-a.wav"  # a 2020 name among 2022 ones
    meta.to_csv(root / "meta.csv", sep="\t", index=False)
    with pytest.raises(LayoutError, match=r"meta.csv: the file names follow no single known layout .*"
                                          r"'audio/airport-amsterdam-0-0-a.wav'") as e:
        dataset_layout(root)
    assert "\n" not in str(e.value)


def test_generated_one_second_dataset_is_the_shipped_2022_layout(tmp_path):
    """make-dataset --clip-seconds 1 writes one-second WAVs named, listed and split like TAU 2022: the
    same metadata bytes as the shipped copy."""
    import soundfile as sf

    from keras_asc.synth import make_dataset

    root = make_dataset(tmp_path / "d", size="3", seed=0, clip_seconds=1, parts_per_segment=2, workers=1,
                        log=lambda *_: None)
    shipped = sorted(p.relative_to(COPIES / "tau2022") for p in (COPIES / "tau2022").rglob("*.csv"))
    written = sorted(p.relative_to(root) for p in root.rglob("*.csv"))
    assert written == shipped
    for rel in shipped:
        assert (root / rel).read_bytes() == (COPIES / "tau2022" / rel).read_bytes(), rel
    tables = read_fold1(root, train_split=50)  # audio present for every listed clip
    info = sf.info(tables["train"]["path"].iloc[0])
    assert info.frames == info.samplerate == 44100


def test_layout_of_generated_clip_lengths():
    assert layout_for_clip_seconds(1) is LAYOUTS["tau2022"]
    assert layout_for_clip_seconds(10) is layout_for_clip_seconds(2) is LAYOUTS["tau2020"]


def test_a_runs_train_split_is_read_from_its_feature_cache(tmp_path):
    import json

    from keras_asc.dataset import train_split_of_run

    (tmp_path / "config.json").write_text(json.dumps({"train_split": "25"}))
    assert train_split_of_run({"feature_cache": {"path": str(tmp_path)}}) == "25"
    assert train_split_of_run({"feature_cache": {"path": str(tmp_path / "gone")}}) is None
    assert train_split_of_run({"feature_cache": {"path": str(tmp_path), "train_split": 10}}) == "10"
    assert train_split_of_run({}) is None
