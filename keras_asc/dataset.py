"""Reader for the TAU Urban Acoustic Scenes 2020 and 2022 Mobile development sets (and generated copies).

Layout (see ``shared/reference/tau2020_mobile_layout.md``; what differs between 2020 and 2022 is
in :mod:`keras_asc.layouts`, detected from meta.csv's file names)::

    ROOT/meta.csv                         filename, scene_label, identifier, source_label
    ROOT/evaluation_setup/fold1_train.csv     filename, scene_label
    ROOT/evaluation_setup/fold1_evaluate.csv  filename, scene_label
    ROOT/evaluation_setup/fold1_test.csv      filename
    ROOT/audio/<scene>-<city>-<location>-<segment>-<device>.wav         (2020, 10 s)
    ROOT/audio/<scene>-<city>-<location>-<segment>-<part>-<device>.wav  (2022, 1 s)
    ROOT/split_setup/split{5,10,25,50,100}.csv  filename, scene_label   (2022 only: DCASE 2024 subsets)

All files are tab-separated with a header. The device is taken from ``source_label`` and the
recording location from ``identifier``; nothing but the layout is told from file names. Counts
are read from the files, never assumed. With a train split (``read_fold1(train_split=25)``) the
train table is that subset of fold1_train, read from its split file.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from keras_asc.layouts import DatasetError, Layout, LayoutError, detect_layout_of_names, resolve_train_split

#: The 10 TAU 2020 scene labels, sorted. Label index = position in this tuple; it is stored
#: with every artifact and never derived from a directory listing.
SCENE_LABELS: tuple[str, ...] = (
    "airport", "bus", "metro", "metro_station", "park", "public_square", "shopping_mall",
    "street_pedestrian", "street_traffic", "tram",
)
#: Devices in DCASE's reporting order. s4-s6 occur only in the evaluate split.
DEVICES: tuple[str, ...] = ("a", "b", "c", "s1", "s2", "s3", "s4", "s5", "s6")
UNSEEN_DEVICES: frozenset[str] = frozenset({"s4", "s5", "s6"})
SPLITS: tuple[str, ...] = ("train", "evaluate", "test")

META_COLUMNS = ("filename", "scene_label", "identifier", "source_label")
SPLIT_COLUMNS = {
    "train": ("filename", "scene_label"),
    "evaluate": ("filename", "scene_label"),
    "test": ("filename",),
}
#: Columns of the table :func:`read_split` returns.
TABLE_COLUMNS = ("filename", "path", "scene_label", "label", "device", "location")


__all__ = ["DatasetError", "LayoutError"]  # re-exported: raised by every reader here


def split_file(root: Path, split: str) -> Path:
    return Path(root) / "evaluation_setup" / f"fold1_{split}.csv"


def _read_tsv(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    if path.is_dir():
        raise DatasetError(f"{path}: is a folder where a tab-separated file is expected; put the dataset's own "
                           f"{path.name} there (copy it again from the dataset, or regenerate it with `asc make-dataset`)")
    if not path.is_file():
        raise DatasetError(f"{path}: file not found. Point --data at the dataset root that holds "
                           "meta.csv and evaluation_setup/ (or generate one with `asc make-dataset`).")
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise DatasetError(f"{path}: the file is empty; it needs a header row naming {list(required)} "
                           "and one row per clip (copy it again from the dataset)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        what = "not text (binary or in another encoding than UTF-8)" if isinstance(e, UnicodeDecodeError) else \
            "not a readable tab-separated file"
        raise DatasetError(f"{path}: {what} ({str(e)[:200]}); it must be a UTF-8 tab-separated text file with a "
                           f"header row naming {list(required)} and one row per clip. Give the dataset's own file "
                           "(copy it again from the dataset, or regenerate the dataset with `asc make-dataset`)"
                           ) from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DatasetError(
            f"{path}: missing column(s) {missing}; found {list(df.columns)}. The file must be "
            f"tab-separated with a header row naming {list(required)}.")
    empty = df[list(required)].eq("").any(axis=1)
    if empty.any():
        raise DatasetError(f"{path}: {int(empty.sum())} row(s) with an empty field, first at data "
                           f"row {int(empty.to_numpy().argmax()) + 1}. Fill or remove them.")
    return df


def read_meta(root: Path) -> pd.DataFrame:
    """``meta.csv`` as a DataFrame indexed by ``filename``, labels checked."""
    path = Path(root) / "meta.csv"
    meta = _read_tsv(path, META_COLUMNS)
    _check_labels(meta, path)
    dup = meta["filename"].duplicated()
    if dup.any():
        raise DatasetError(f"{path}: {int(dup.sum())} duplicated filename(s), e.g. "
                           f"{meta.loc[dup, 'filename'].iloc[0]}. Each clip must appear once.")
    bad_dev = sorted(set(meta["source_label"]) - set(DEVICES))
    if bad_dev:
        raise DatasetError(f"{path}: unknown source_label value(s) {bad_dev}; expected {list(DEVICES)}.")
    return meta.set_index("filename", drop=False)


def _check_labels(df: pd.DataFrame, path: Path) -> None:
    if "scene_label" not in df.columns:
        return
    unknown = sorted(set(df["scene_label"]) - set(SCENE_LABELS))
    if unknown:
        raise DatasetError(f"{path}: unknown scene label(s) {unknown[:5]}; the TAU 2020 labels are "
                           f"{list(SCENE_LABELS)}. Fix the labels or the file.")


def dataset_layout(root: Path) -> Layout:
    """The layout of the dataset at ``root`` (:mod:`keras_asc.layouts`), told from meta.csv."""
    root = Path(root)
    return detect_layout_of_names(read_meta(root)["filename"], source=root / "meta.csv")


def read_split(root: Path, split: str, *, check_audio: bool = True) -> pd.DataFrame:
    """One fold1 split as a table with columns :data:`TABLE_COLUMNS`, in file order.

    ``path`` is absolute; ``label`` indexes :data:`SCENE_LABELS`; ``device`` comes from
    meta.csv's ``source_label`` and ``location`` from its ``identifier``. For ``test`` the
    scene comes from meta.csv too. Raises :class:`DatasetError` for missing files or columns,
    unknown labels, clips absent from meta.csv, or (with ``check_audio``) missing audio.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = Path(root).resolve()
    meta = read_meta(root)
    path = split_file(root, split)
    return _clip_table(root, meta, path, _read_tsv(path, SPLIT_COLUMNS[split]), what=f"the {split} split",
                       check_audio=check_audio)


def read_train_split(root: Path, train_split: str | int, *, check_audio: bool = True) -> pd.DataFrame:
    """The DCASE 2024 training subset ``train_split`` (``5`` ... ``100`` or a split file's path,
    :func:`keras_asc.layouts.resolve_train_split`) as a table like :func:`read_split`'s, in the
    split file's order. Every clip must be in fold1_train.csv (a subset of the train split).
    ``table.attrs["source"]`` is the split file."""
    root = Path(root).resolve()
    meta = read_meta(root)
    layout = detect_layout_of_names(meta["filename"], source=root / "meta.csv")
    path = resolve_train_split(root, train_split, layout)
    table = _clip_table(root, meta, path, _read_tsv(path, SPLIT_COLUMNS["train"]), what="the training subset",
                        check_audio=check_audio)
    train = _read_tsv(split_file(root, "train"), SPLIT_COLUMNS["train"])
    outside = ~table["filename"].isin(set(train["filename"]))
    if outside.any():
        names = table.loc[outside, "filename"].tolist()
        raise DatasetError(
            f"{path}: {len(names)} clip(s) not in {split_file(root, 'train')}, e.g. {names[:3]}; a DCASE training "
            "subset must come from the train split (clips of the evaluate split would leak into training). "
            "Use the official split file of this dataset")
    table.attrs["source"] = str(path)
    return table


def train_split_of_run(run_cfg: dict) -> str | None:
    """The training subset a run was trained on (``--train-split``, as its feature cache recorded
    it in ``config.json``), for the stages that rebuild that cache (export, evaluate); None for the
    whole fold1 train split, for runs made before the option, and when the cache is gone."""
    cache = run_cfg.get("feature_cache") or {}
    if cache.get("train_split") is not None:
        return str(cache["train_split"])
    config = Path(cache["path"]) / "config.json" if cache.get("path") else None
    if config is None or not config.is_file():
        return None
    try:
        value = json.loads(config.read_text()).get("train_split")
    except (ValueError, OSError, AttributeError):
        return None
    return None if value is None else str(value)


def _clip_table(root: Path, meta: pd.DataFrame, path: Path, df: pd.DataFrame, *, what: str,
                check_audio: bool) -> pd.DataFrame:
    """The :data:`TABLE_COLUMNS` table of the clips ``df`` (read from ``path``) lists."""
    if df.empty:
        raise DatasetError(f"{path}: {what} lists no clips; restore the file from the dataset")
    dup = df["filename"].duplicated()
    if dup.any():
        raise DatasetError(f"{path}: {int(dup.sum())} duplicate row(s), first {df.loc[dup, 'filename'].iloc[0]!r} "
                           f"(data row {int(dup.to_numpy().argmax()) + 1}); a clip listed twice counts twice. "
                           "Remove the duplicates")
    _check_labels(df, path)
    not_in_meta = ~df["filename"].isin(meta.index)
    if not_in_meta.any():
        names = df.loc[not_in_meta, "filename"].tolist()
        raise DatasetError(f"{path}: {len(names)} clip(s) not listed in meta.csv, e.g. {names[:3]}. "
                           "The split and meta.csv come from different dataset versions: copy meta.csv and "
                           "evaluation_setup/ again from one release of the dataset (or regenerate it with "
                           "`asc make-dataset`).")
    m = meta.loc[df["filename"]]
    if "scene_label" in df.columns:
        clash = df["scene_label"].to_numpy() != m["scene_label"].to_numpy()
        if clash.any():
            raise DatasetError(f"{path}: {int(clash.sum())} clip(s) whose scene differs from "
                               f"meta.csv, e.g. {df.loc[clash, 'filename'].iloc[0]}: one of the two was edited. "
                               "Copy meta.csv and evaluation_setup/ again from one release of the dataset (or "
                               "regenerate it with `asc make-dataset`).")
    table = pd.DataFrame({
        "filename": df["filename"].to_numpy(),
        "path": [str(root / f) for f in df["filename"]],
        "scene_label": m["scene_label"].to_numpy(),
        "device": m["source_label"].to_numpy(),
        "location": m["identifier"].to_numpy(),
    })
    table.insert(3, "label", table["scene_label"].map(SCENE_LABELS.index).astype("int64"))
    if check_audio:
        missing = [p for p in table["path"] if not Path(p).is_file()]
        if missing:
            raise DatasetError(
                f"{path}: {len(missing)} listed audio file(s) missing under {root}, first: "
                f"{[str(Path(p).relative_to(root)) for p in missing[:3]]}. Download or extract the "
                "missing audio archives, or fix the dataset root.")
    return table


def _source(root: Path, split: str, table: pd.DataFrame) -> Path:
    """The file a table was read from: its split file, or ``fold1_<split>.csv``."""
    return Path(table.attrs["source"]) if "source" in table.attrs else split_file(root, split)


def split_warnings(root: Path, tables: dict[str, pd.DataFrame]) -> list[str]:
    """Suspect but usable splits: a scene with no clips in a split (its accuracy is undefined
    there, and a model never trained on it cannot predict it)."""
    out = []
    for split, table in tables.items():
        missing = [s for s in SCENE_LABELS if s not in set(table["scene_label"])]
        if missing:
            out.append(f"{_source(root, split, table)}: no clips of scene(s) {missing} in the {split} split")
    return out


def read_fold1(root: Path, *, check_audio: bool = True, train_split: str | int | None = None) -> dict[str, pd.DataFrame]:
    """Train and evaluate tables, checked for recording-location leakage between them.

    ``train_split`` (2022 layout only): train on that DCASE 2024 subset (:func:`read_train_split`)
    instead of the whole fold1_train.csv."""
    tables = {"train": (read_split(root, "train", check_audio=check_audio) if train_split is None
                        else read_train_split(root, train_split, check_audio=check_audio)),
              "evaluate": read_split(root, "evaluate", check_audio=check_audio)}
    shared = sorted(set(tables["train"]["location"]) & set(tables["evaluate"]["location"]))
    if shared:
        raise DatasetError(
            f"{_source(root, 'train', tables['train'])} and {split_file(root, 'evaluate')}: {len(shared)} recording "
            f"location(s) appear in both, e.g. {shared[:3]}. Clips of one location must stay in one "
            "split; use the official fold1 files.")
    return tables


def stratified_sample(table: pd.DataFrame, *, size: int, seed: int) -> pd.DataFrame:
    """A deterministic stratified subset of ``table`` (rows keep their original order).

    Strata are (scene_label, device). Every stratum contributes one clip first (so every
    scene and every training device is covered when ``size`` allows), then clips are added
    in proportion to stratum size. Same table + size + seed -> the same rows.
    """
    if size < 1:
        raise ValueError("sample size must be at least 1")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(table))
    t = table.iloc[order].copy()
    t["_row"] = order
    t["_rank"] = t.groupby(["scene_label", "device"], sort=True).cumcount()
    t["_n"] = t.groupby(["scene_label", "device"], sort=True)["_rank"].transform("size")
    t["_key"] = np.where(t["_rank"] == 0, -1.0, (t["_rank"] + rng.random(len(t))) / t["_n"])
    picked = t.sort_values(["_key", "_row"], kind="stable").head(size)
    return table.iloc[np.sort(picked["_row"].to_numpy())]


def describe(tables: dict[str, pd.DataFrame]) -> str:
    """Clips per split x device and per split x scene, as printable text."""
    counts_dev = pd.DataFrame({s: t["device"].value_counts() for s, t in tables.items()})
    counts_dev = counts_dev.reindex([d for d in DEVICES if d in counts_dev.index]).fillna(0).astype(int)
    counts_dev.loc["total"] = counts_dev.sum()
    counts_scene = pd.DataFrame({s: t["scene_label"].value_counts() for s, t in tables.items()})
    counts_scene = counts_scene.reindex([s for s in SCENE_LABELS if s in counts_scene.index])
    counts_scene = counts_scene.fillna(0).astype(int)
    locs = {s: t["location"].nunique() for s, t in tables.items()}
    return ("clips per device (s4-s6 are unseen in training):\n" + counts_dev.to_string()
            + "\n\nclips per scene:\n" + counts_scene.to_string()
            + "\n\nrecording locations: " + ", ".join(f"{s} {n}" for s, n in locs.items()))
