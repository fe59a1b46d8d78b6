"""Cases of make-dataset and describe: output folders, sizes, and every way a dataset's CSVs can be damaged."""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Callable

from .checks import all_checks, described, in_stdout, no_partials, ok_if, same_describe
from .files import edit_rows, edit_text, read_tsv, replace_file, write_tsv
from .registry import CaseList, Ctx

CASES = CaseList("dataset")
case = CASES.case


case("make-dataset", "--out is an existing user file", "E1", ["notes.txt"])(
    lambda c: ["make-dataset", c.user_file("notes.txt"), "--size", "tiny"])
case("make-dataset", "--out is a non-empty user folder", "E1", ["mine"])(
    lambda c: ["make-dataset", c.user_dir("mine"), "--size", "tiny"])


@case("make-dataset", "--out already holds this very dataset (same parameters)", "H")
def _(c):
    d = c.data_copy()
    c.check = in_stdout("reusing")
    return ["make-dataset", d, "--size", "tiny"]


case("make-dataset", "--out holds a generated dataset with other parameters (--seed 1)", "E1", ["{C}/data"])(
    lambda c: ["make-dataset", c.data_copy(), "--size", "tiny", "--seed", "1"])
case("make-dataset", "--out is a training run folder", "E1", ["{F}/run"])(
    lambda c: ["make-dataset", c.fx.run, "--size", "tiny"])
case("make-dataset", "--out is the audio folder inside a dataset", "E1", ["audio"])(
    lambda c: ["make-dataset", c.fx.data / "audio", "--size", "tiny"])
case("make-dataset", "--out's parent is a file", "E1", ["notes.txt"])(
    lambda c: ["make-dataset", c.user_file("notes.txt") / "data", "--size", "tiny"])


@case("make-dataset", "--out is a dangling symlink", "E1|H", ["dangling"])
def _(c):
    (c.dir / "dangling").symlink_to(c.dir / "nowhere")
    c.check = described("a dataset behind the symlink", lambda p: ok_if((c.dir / "nowhere" / "meta.csv").is_file(), "no dataset behind the symlink"))
    return ["make-dataset", c.dir / "dangling", "--size", "3", "--clip-seconds", "0.5"]


case("make-dataset", "--size 0", "E2", ["--size"])(lambda c: ["make-dataset", c.dir / "d", "--size", "0"])
case("make-dataset", "--size 2 (a number, but below the 3 segments a split needs)", "E2", ["--size"])(
    lambda c: ["make-dataset", c.dir / "d", "--size", "2"])
case("make-dataset", "--size tiny,demo", "E2", ["--size"])(
    lambda c: ["make-dataset", c.dir / "d", "--size", "tiny,demo"])
case("make-dataset", "--clip-seconds nan", "E2", ["--clip-seconds"])(
    lambda c: ["make-dataset", c.dir / "d", "--size", "3", "--clip-seconds", "nan"])


@case("make-dataset", "--clip-seconds 1e6 (11 days per clip)", "E2|E1", ["--clip-seconds"])
def _(c):
    c.rlimit_as = 8 << 30
    return ["make-dataset", c.dir / "d", "--size", "3", "--clip-seconds", "1e6", "--workers", "1"]


case("make-dataset", "--seed -1", "E2", ["--seed"])(lambda c: ["make-dataset", c.dir / "d", "--seed", "-1"])
case("make-dataset", "--workers 0", "E2", ["--workers"])(lambda c: ["make-dataset", c.dir / "d", "--workers", "0"])


@case("make-dataset", "--out with spaces, a comma and unicode", "H")
def _(c):
    out = c.dir / "my data, ü v2"

    def check(p):
        header, rows = read_tsv(out / "meta.csv")
        cfg = json.loads((out / "synth_config.json").read_text())
        missing = [r[0] for r in rows if not (out / r[0]).is_file()]
        return ok_if(len(rows) == cfg["clips"] and not missing, f"{len(rows)} rows, {cfg['clips']} clips, missing {missing[:2]}")
    c.check = check
    check.what = "every meta.csv row's audio exists, as many as synth_config.json's clips"
    return ["make-dataset", out, "--size", "3", "--clip-seconds", "0.5"]


@case("make-dataset", "SIGKILL mid-generation, then the same command again", "H")
def _(c):
    out = c.dir / "gen"
    argv = ["make-dataset", out, "--size", "3", "--clip-seconds", "0.5", "--workers", "1"]
    c.start_and_kill(argv, signal.SIGKILL, lambda: any(c.dir.glob(".gen.*.partial")), delay=1.0)
    c.allow(*c.dir.glob(".gen.*"))  # the killed run's staging folder: the rerun may remove it
    c.check = all_checks(lambda p: ok_if((out / "synth_config.json").is_file(), "no finished dataset"),
                         no_partials(c.dir))
    return argv


# ---------------------------------------------------------------------------- describe
case("describe", "--data does not exist", "E1", ["nowhere"])(lambda c: ["describe", "--data", c.dir / "nowhere"])
case("describe", "--data is a file", "E1", ["notes.txt"])(lambda c: ["describe", "--data", c.user_file("notes.txt")])
case("describe", "--data is the dataset's audio folder", "E1", ["meta.csv", "audio"])(
    lambda c: ["describe", "--data", c.fx.data / "audio"])


@case("describe", "--data is a symlink to the dataset", "H")
def _(c):
    (c.dir / "link").symlink_to(c.fx.data)
    c.check = same_describe(c.fx)
    return ["describe", "--data", c.dir / "link"]


@case("describe", "--data path with spaces, a comma and unicode", "H")
def _(c):
    d = c.data_copy("dataset ü, copy")
    c.check = same_describe(c.fx)
    return ["describe", "--data", d]


@case("describe", "--data is a symlink loop", "E1", ["loop"])
def _(c):
    (c.dir / "loop").symlink_to(c.dir / "loop2")
    (c.dir / "loop2").symlink_to(c.dir / "loop")
    return ["describe", "--data", c.dir / "loop"]


def _describe_copy(damage: Callable[[Ctx, Path], object], *extra: str, clean_table: bool = False):
    """A case function: ``asc describe`` of a copy of the dataset that ``damage(c, copy)`` changed;
    with ``clean_table``, checked to print the clean dataset's table."""
    def fn(c: Ctx) -> list:
        d = c.data_copy()
        damage(c, d)
        if clean_table:
            c.check = same_describe(c.fx)
        return ["describe", "--data", d, *extra]
    return fn


def _split(d: Path, split: str) -> Path:
    return d / "evaluation_setup" / f"fold1_{split}.csv"


def _with_field(rows: list[list[str]], i: int, k: int, value: str) -> list[list[str]]:
    """``rows`` with field ``k`` of row ``i`` replaced by ``value``."""
    return [[value if (j, m) == (i, k) else v for m, v in enumerate(r)] for j, r in enumerate(rows)]


def _location_in_both_splits(c: Ctx, d: Path) -> None:
    h, rows = read_tsv(d / "meta.csv")
    meta = {r[0]: r for r in rows}
    train_row = meta[c.fx.clip("train", 0)]
    eval_row = next(meta[f] for f, scene in c.fx.split_rows("evaluate") if scene == train_row[1])
    eval_row[2] = train_row[2]  # an evaluate clip recorded at a training location
    write_tsv(d / "meta.csv", h, rows)


def _reordered_split_columns(c: Ctx, d: Path) -> None:
    for split in ("train", "evaluate"):
        h, rows = read_tsv(_split(d, split))
        write_tsv(_split(d, split), ["scene_label", "comment", "filename"], [[r[1], "ok", r[0]] for r in rows])


def _meta_csv_folder(c: Ctx, d: Path) -> None:
    (d / "meta.csv").unlink()
    (d / "meta.csv").mkdir()


case("describe", "meta.csv missing", "E1", ["meta.csv"])(_describe_copy(lambda c, d: (d / "meta.csv").unlink()))
case("describe", "meta.csv empty (0 bytes)", "E1", ["meta.csv"])(
    _describe_copy(lambda c, d: replace_file(d / "meta.csv", b"")))
case("describe", "meta.csv comma-separated instead of tabs", "E1", ["meta.csv"])(
    _describe_copy(lambda c, d: edit_text(d / "meta.csv", lambda t: t.replace("\t", ","))))
case("describe", "meta.csv without its source_label column", "E1", ["source_label"])(
    _describe_copy(lambda c, d: edit_rows(d / "meta.csv", lambda h, rows: (h[:3], [r[:3] for r in rows]))))
case("describe", "meta.csv with a duplicated row", "E1", ["meta.csv"])(
    _describe_copy(lambda c, d: edit_rows(d / "meta.csv", lambda h, rows: (h, rows + rows[:1]))))
case("describe", "fold1_train.csv with a duplicated row", "E1", ["fold1_train.csv"])(
    _describe_copy(lambda c, d: edit_rows(_split(d, "train"), lambda h, rows: (h, rows + rows[3:4]))))
case("describe", "an unknown scene label (airport -> airprot) in meta and split", "E1", ["airprot"])(
    _describe_copy(lambda c, d: [edit_text(p, lambda t: t.replace("\tairport", "\tairprot"))
                                 for p in (d / "meta.csv", _split(d, "train"), _split(d, "evaluate"))]))
case("describe", "an unknown device (source_label s9)", "E1", ["s9"])(
    _describe_copy(lambda c, d: edit_rows(d / "meta.csv", lambda h, rows: (h, _with_field(rows, 0, 3, "s9")))))
case("describe", "a split lists a clip meta.csv does not have", "E1", ["fold1_evaluate.csv", "meta.csv"])(
    _describe_copy(lambda c, d: edit_rows(_split(d, "evaluate"), lambda h, rows: (
        h, rows + [["audio/ghost-clip-a.wav", "airport"]]))))
case("describe", "a split's scene disagrees with meta.csv", "E1", ["fold1_train.csv"])(
    _describe_copy(lambda c, d: edit_rows(_split(d, "train"), lambda h, rows: (
        h, _with_field(rows, 0, 1, "tram" if rows[0][1] != "tram" else "bus")))))
case("describe", "a split row with an empty field", "E1", ["fold1_train.csv"])(
    _describe_copy(lambda c, d: edit_rows(_split(d, "train"), lambda h, rows: (h, _with_field(rows, 2, 1, "")))))
case("describe", "fold1_evaluate.csv holds only its header", "E1", ["fold1_evaluate.csv"])(
    _describe_copy(lambda c, d: edit_rows(_split(d, "evaluate"), lambda h, rows: (h, []))))
case("describe", "an audio file listed in the train split is missing", "E1", [".wav"])(
    _describe_copy(lambda c, d: (d / c.fx.clip("train", 5)).unlink()))
case("describe", "missing audio with --no-audio-check", "H")(
    _describe_copy(lambda c, d: (d / c.fx.clip("train", 5)).unlink(), "--no-audio-check", clean_table=True))
case("describe", "one recording location in both train and evaluate", "E1", ["location"])(
    _describe_copy(_location_in_both_splits))
case("describe", "the train split has no clip of scene 'tram'", "W", ["tram"])(
    _describe_copy(lambda c, d: edit_rows(_split(d, "train"), lambda h, rows: (h, [r for r in rows if r[1] != "tram"]))))
case("describe", "CSV files with Windows (CRLF) line endings", "H")(
    _describe_copy(lambda c, d: [edit_text(p, lambda t: t.replace("\n", "\r\n"))
                                 for p in (d / "meta.csv", *(d / "evaluation_setup").glob("*.csv"))], clean_table=True))
case("describe", "meta.csv saved with a UTF-8 byte-order mark", "H|E1", ["meta.csv"])(
    _describe_copy(lambda c, d: replace_file(d / "meta.csv", b"\xef\xbb\xbf" + (d / "meta.csv").read_bytes()),
                   clean_table=True))
case("describe", "split files with an extra column, columns reordered", "H")(
    _describe_copy(_reordered_split_columns, clean_table=True))
case("describe", "meta.csv is a folder", "E1", ["meta.csv"], forbid=("file not found",))(
    _describe_copy(_meta_csv_folder))
case("describe", "meta.csv holds bytes that are not UTF-8", "E1", ["meta.csv"])(
    _describe_copy(lambda c, d: replace_file(d / "meta.csv", (d / "meta.csv").read_bytes().replace(
        b"airport", b"a\xffrport", 1))))


@case("describe", "meta.csv not readable by the user (run as nobody, mode 000)", "E1", ["meta.csv"],
      forbid=("not writable", "not found"))
def _(c):
    d = c.data_copy()
    os.chmod(d / "meta.csv", 0)
    c.as_nobody = True
    return ["describe", "--data", d]
