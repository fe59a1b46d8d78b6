"""The pinned TFLM sources: find the archives, check them, and lay out a TFLM tree that builds
offline.

The archives (``tflite-micro.tar.gz``, ``flatbuffers.tar.gz``, ...) are ``git archive``s of the
commits TFLM pins (``../shared/third_party/SOURCES.md``). :func:`prepare_tflm_tree` extracts
them once into the build cache as TFLM's Makefile expects them after its own downloads::

    <cache>/tflm/<key>/tensorflow/lite/micro/tools/make/downloads/
        flatbuffers/   (TFLM's flatbuffers.patch applied)   kissfft/ (TFLM's kissfft.patch applied)
        gemmlowp/  ruy/  cmsis/ (CMSIS_6)  cmsis_nn/  pigweed/ (empty: only TFLM's own tests use it)
        cmsis_dsp/ (CMSIS-DSP, for the exported front end; TFLM itself does not use it)

``<key>`` hashes the archives' sha256 sums, so a changed archive makes a new tree and nothing
stale is reused. The tree is built in a staging folder and renamed into place.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zlib
from pathlib import Path

from keras_asc import artifacts
from keras_asc.errors import AscError

ENV_THIRD_PARTY = "ASC_THIRD_PARTY"
ENV_CACHE = "ASC_CACHE_DIR"
PREPARE_VERSION = "1"  # bump when the tree layout or patches change

#: archive -> (top-level folder inside it, folder under TFLM's downloads/ or "" for TFLM itself)
ARCHIVES: dict[str, tuple[str, str]] = {
    "tflite-micro.tar.gz": ("tflite-micro", ""),
    "flatbuffers.tar.gz": ("flatbuffers", "flatbuffers"),
    "gemmlowp.tar.gz": ("gemmlowp", "gemmlowp"),
    "ruy.tar.gz": ("ruy", "ruy"),
    "kissfft.tar.gz": ("kissfft", "kissfft"),
    "cmsis-nn.tar.gz": ("CMSIS-NN", "cmsis_nn"),
    "cmsis6.tar.gz": ("CMSIS_6", "cmsis"),
    "cmsis-dsp.tar.gz": ("CMSIS-DSP", "cmsis_dsp"),  # the front end's real FFT (not TFLM's)
}

FETCH_HELP = (
    "With internet access, make the same archives from the upstream repositories (commits in "
    "../shared/third_party/SOURCES.md), e.g. `git clone https://github.com/tensorflow/tflite-micro && "
    "git -C tflite-micro archive --prefix=tflite-micro/ -o tflite-micro.tar.gz 90b983c2b`, likewise "
    "flatbuffers v25.9.23, gemmlowp 719139ce, ruy d3712831, kissfft v130, CMSIS-NN 4ab83cc3 "
    "(prefix CMSIS-NN/), CMSIS_6 5782d6f8 (prefix CMSIS_6/), CMSIS-DSP v1.17.1 (prefix CMSIS-DSP/)")

DOWNLOADS = Path("tensorflow/lite/micro/tools/make/downloads")


class FirmwareError(AscError, ValueError):
    """A firmware build or run cannot proceed; the message says what is missing and the fix."""


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]  # firmware_harness/builds/third_party.py


def default_third_party_dir() -> Path:
    """``$ASC_THIRD_PARTY``, else ``../shared/third_party`` beside this checkout."""
    env = os.environ.get(ENV_THIRD_PARTY)
    return Path(env) if env else repo_root().parent / "shared" / "third_party"


def cache_root() -> Path:
    """``$ASC_CACHE_DIR``, else ``~/.cache/asc-tinyml`` (build outputs, never committed)."""
    env = os.environ.get(ENV_CACHE)
    return Path(env) if env else Path.home() / ".cache" / "asc-tinyml"


@dataclasses.dataclass(frozen=True)
class ThirdParty:
    """The located archives and their sha256 sums."""

    folder: Path
    sha256: dict[str, str]  # archive name -> sha256

    @property
    def key(self) -> str:
        text = json.dumps({"sha256": self.sha256, "prepare": PREPARE_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def locate_third_party(folder: Path | None = None, *, log=print) -> ThirdParty:
    """Find every archive in ``folder`` (default :func:`default_third_party_dir`) and check
    the ones listed in its ``SHA256SUMS``. Raises :class:`FirmwareError` naming what is missing;
    warns when ``SHA256SUMS`` is missing or does not list an archive (it cannot be checked)."""
    folder = Path(folder) if folder else default_third_party_dir()
    missing = [n for n in ARCHIVES if not (folder / n).is_file()]
    if missing:
        raise FirmwareError(
            f"{folder}: the TFLM source archives {missing} are missing (looked there because "
            f"{'$' + ENV_THIRD_PARTY + ' says so' if os.environ.get(ENV_THIRD_PARTY) else 'it is the default'}). "
            f"Point --third-party or ${ENV_THIRD_PARTY} at the folder that holds them. {FETCH_HELP}")
    listed = {}
    sums = folder / "SHA256SUMS"
    if sums.is_file():
        for line in sums.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2:
                listed[parts[1].lstrip("*")] = parts[0]
    unchecked = [n for n in ARCHIVES if n not in listed]
    if unchecked:
        log(f"firmware: warning: {sums} {'lists no sha256 for ' + str(unchecked) if sums.is_file() else 'is missing'}: "
            "those archives cannot be checked against the pinned commits (a corrupt one is still refused when it "
            "is extracted). Keep SHA256SUMS beside the archives")
    got = {n: artifacts.sha256_file(folder / n) for n in ARCHIVES}
    bad = [n for n in ARCHIVES if n in listed and listed[n] != got[n]]
    if bad:
        raise FirmwareError(f"{folder}: {bad} do not match their sha256 in {sums}: the archives are "
                            "corrupt or not the pinned commits; fetch them again")
    return ThirdParty(folder, got)


def _extract(archive: Path, top: str, dest: Path) -> None:
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(dest.parent / ".x", filter="data")
    except (tarfile.TarError, EOFError, zlib.error) as e:
        raise FirmwareError(f"{archive}: not a readable gzip'd tar archive ({type(e).__name__}: {e}); it is corrupt or "
                            f"truncated. Replace it with the pinned archive. {FETCH_HELP}") from None
    if not (dest.parent / ".x" / top).is_dir():
        raise FirmwareError(f"{archive}: has no top-level folder {top}/; it is not the archive "
                            f"../shared/third_party/SOURCES.md describes. {FETCH_HELP}")
    os.replace(dest.parent / ".x" / top, dest)
    shutil.rmtree(dest.parent / ".x")


def _patch(folder: Path, patch_file: Path) -> None:
    if shutil.which("patch") is None:
        raise FirmwareError("the `patch` program is missing; install the Debian package `patch`")
    proc = subprocess.run(["patch", "-p1", "-s", "-i", str(patch_file)], cwd=folder,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise FirmwareError(f"{patch_file} does not apply to {folder}: {proc.stdout}{proc.stderr}")


def prepare_tflm_tree(third_party: ThirdParty, *, log=print) -> Path:
    """The prepared TFLM tree for ``third_party`` (built once per archive set, then reused)."""
    final = cache_root() / "tflm" / third_party.key
    if (final / ".complete").is_file():
        return final
    log(f"firmware: preparing the TFLM tree from {third_party.folder} into {final}")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".partial"))
    try:
        tree = tmp / "tree"
        _extract(third_party.folder / "tflite-micro.tar.gz", "tflite-micro", tree)
        downloads = tree / DOWNLOADS
        downloads.mkdir(parents=True, exist_ok=True)
        for name, (top, dest) in ARCHIVES.items():
            if dest:
                _extract(third_party.folder / name, top, downloads / dest)
        (downloads / "pigweed").mkdir()
        _patch(downloads / "flatbuffers", tree / DOWNLOADS.parent / "flatbuffers.patch")
        _patch(downloads / "kissfft", tree / "third_party" / "kissfft" / "kissfft.patch")
        artifacts.write_json(tree / ".complete", {"sha256": third_party.sha256, "prepare": PREPARE_VERSION})
        try:
            os.replace(tree, final)
        except OSError:  # another process finished first: theirs is as good
            if not (final / ".complete").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def library_sources(tree: Path, *, kernels: str) -> list[str]:
    """TFLM's own list of library sources (``make list_library_sources`` plus third-party
    kernel sources), relative to ``tree``, for ``kernels`` = ``reference`` or ``cmsis_nn``.
    Cached in the tree."""
    cached = tree / f".sources-{kernels}.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    if shutil.which("make") is None:
        raise FirmwareError("`make` is missing; install the Debian package `make`")
    args = ["make", "-s", "-f", "tensorflow/lite/micro/tools/make/Makefile",
            "list_library_sources", "list_third_party_sources"]
    if kernels == "cmsis_nn":
        args.append("OPTIMIZED_KERNEL_DIR=cmsis_nn")
    # The examples' Makefile.inc files run generate_cc_arrays.py (numpy, Pillow) as make starts.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(args, cwd=tree, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise FirmwareError(f"{tree}: TFLM's Makefile could not list its sources:\n{proc.stderr[-2000:]}")
    files = [f for f in proc.stdout.split() if f.endswith((".cc", ".c"))]
    artifacts.atomic_write_text(cached, json.dumps(files))
    return files
