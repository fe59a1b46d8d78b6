"""File helpers of the cases: copies that never write through a hard link, TSV, audio, tree snapshots."""
from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path
from typing import Callable


def replace_file(path: Path, data: bytes | str) -> None:
    """Write ``path`` as a new file (never in place: it may be a hard link to a fixture)."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        path.unlink()
    path.write_bytes(data.encode() if isinstance(data, str) else data)


def edit_text(path: Path, fn: Callable[[str], str]) -> None:
    replace_file(path, fn(Path(path).read_text()))


def edit_json(path: Path, fn: Callable[[dict], None]) -> None:
    obj = json.loads(Path(path).read_text())
    fn(obj)
    replace_file(path, json.dumps(obj, indent=2))


def read_tsv(path: Path) -> tuple[list[str], list[list[str]]]:
    lines = Path(path).read_text().splitlines()
    return lines[0].split("\t"), [line.split("\t") for line in lines[1:] if line]


def write_tsv(path: Path, header: list[str], rows: list[list[str]], *, sep: str = "\t", eol: str = "\n") -> None:
    replace_file(path, eol.join(sep.join(r) for r in [header, *rows]) + eol)


def sha256(path: Path) -> str:
    from keras_asc.artifacts import sha256_file

    return sha256_file(path)


def copy_dataset(src: Path, dst: Path) -> Path:
    """A dataset copy whose CSVs and JSON are real files and whose audio is hard-linked."""
    shutil.copytree(src, dst, copy_function=os.link, symlinks=True)
    for f in [*dst.glob("*.csv"), *dst.glob("*.json"), *(dst / "evaluation_setup").glob("*")]:
        if f.is_file():
            replace_file(f, f.read_bytes())
    return dst


def read_audio(path: Path):
    import soundfile as sf

    return sf.read(str(path), dtype="float32", always_2d=True)


def write_audio(path: Path, data, sr: int, *, subtype: str = "PCM_24", fmt: str | None = None) -> None:
    """Write audio as a new file; PCM_24 by default, as the generated dataset's clips are."""
    import soundfile as sf

    path = Path(path)
    if path.exists() or path.is_symlink():
        path.unlink()
    sf.write(str(path), data, sr, subtype=subtype, format=fmt or "WAV")


class Snapshotter:
    """Every file, folder and symlink under some roots, files by sha256 (cached by inode, size,
    mtime and ctime, so an unchanged tree is cheap to snapshot again)."""

    def __init__(self):
        self._cache: dict[tuple, str] = {}

    def file_digest(self, path: str, st: os.stat_result) -> str:
        key = (path, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if key not in self._cache:
            try:
                self._cache[key] = sha256(Path(path))
            except OSError as e:
                self._cache[key] = f"unreadable: {e}"
        return self._cache[key]

    def __call__(self, roots: list[Path], exclude: tuple[str, ...] = ()) -> dict[str, tuple]:
        out: dict[str, tuple] = {}
        for root in roots:
            root = str(root)
            if not os.path.lexists(root):
                continue
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in exclude]
                for name in dirnames + filenames:
                    p = os.path.join(dirpath, name)
                    try:
                        st = os.lstat(p)
                    except FileNotFoundError:
                        continue
                    if stat.S_ISLNK(st.st_mode):
                        out[p] = ("link", os.readlink(p))
                    elif stat.S_ISDIR(st.st_mode):
                        out[p] = ("dir",)
                    elif stat.S_ISREG(st.st_mode):
                        out[p] = ("file", self.file_digest(p, st))
                    else:  # a FIFO, socket or device: never opened (reading a FIFO waits for a writer)
                        out[p] = ("special", stat.S_IFMT(st.st_mode))
        return out




def edit_rows(path: Path, fn: Callable[[list[str], list[list[str]]], tuple[list[str], list[list[str]]]]) -> None:
    """Rewrite a TSV file (as a new file) with the header and rows ``fn(header, rows)`` returns."""
    header, rows = read_tsv(path)
    write_tsv(path, *fn(header, rows))
