"""``asc bundle``: a self-contained firmware folder for one export and target, built with CMake.

The bundle holds exactly the build ``asc firmware`` verifies, laid out to build without this
project (no Python, no network, stock CMake)::

    OUT/
      CMakeLists.txt               firmware/bundle/CMakeLists.txt (static)
      bundle_config.cmake          generated: target, flags (targets.py), source lists (tflm_build.py)
      BUNDLE.md, bundle.json       what it holds: export, target, archives' commits and sha256
      model/                       the export's C_SOURCE_FILES
      app/main.cc                  the example: stub microphone -> front end -> inference -> class
      harness/main.cc              firmware/main.cc (+ asc_profile.h): the test program
      tflm/                        TFLM's layout: its runtime and the model's kernels, and under
                                   tensorflow/lite/micro/tools/make/downloads/ CMSIS-NN, CMSIS
                                   Core, the CMSIS-DSP FFT, flatbuffers, gemmlowp, ruy headers
                                   (only the files the sources include), each archive's LICENSE
      toolchain-arm-none-eabi.cmake, board/ (placeholder linker script and start-up),
      qemu/ (the QEMU board's linker script and semihosting start-up): Cortex-M bundles only

The sources are :func:`~firmware_harness.tflm_build.select_sources` of TFLM's own list
(:func:`~firmware_harness.third_party.library_sources`) for the export's ``RegisterModelOps`` and
:data:`~firmware_harness.tflm_build.DSP_SOURCES`; the headers are found by following the
``#include`` lines of every source through the include folders of
:func:`~firmware_harness.tflm_build.include_flags` and ``dsp_flags`` (every branch of every
``#if``: a superset of what any target's preprocessor opens). The sources are those of the
prepared tree (:func:`~firmware_harness.third_party.prepare_tflm_tree`: TFLM's patches to
flatbuffers and kissfft already applied).
"""
from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

from firmware_harness import third_party, tflm_build
from firmware_harness.program import FIRMWARE_DIR, resolver_methods
from firmware_harness.targets import (C_FLAGS, COMMON_FLAGS, CORE_OPT, CXX_FLAGS, KERNEL_OPT, Target,
                                      get_target)
from firmware_harness.third_party import ARCHIVES, DOWNLOADS, FirmwareError
from keras_asc import artifacts

STAGE = "bundle"
TEMPLATE_DIR = FIRMWARE_DIR / "bundle"
BUNDLE_TARGETS = ("host", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55")
PROGRAM_OPT = "-O2"  # firmware_harness.program.PROGRAM_OPT: the program's and the export's sources
#: Cortex-M link flags of a board without semihosting (board/board_start.c)
BOARD_LINK_FLAGS = ("--specs=nosys.specs", "-nostartfiles")
_TREE = "@TFLM@"  # stands for the bundle's tflm/ folder in the generated flags
_INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)
_LICENSE = re.compile(r"^(LICEN[SC]E|COPYING|NOTICE)", re.I)


@dataclasses.dataclass(frozen=True)
class Bundle:
    out: Path
    target: str
    sources: int  # C/C++ sources compiled by the bundle's CMakeLists.txt (library and model)
    headers: int
    files: int
    bytes: int


def _cmake_list(items) -> str:
    return " ".join('"' + str(i).replace("\\", "\\\\").replace('"', '\\"') + '"' for i in items)


def _tree_flags(flags: list[str]) -> list[str]:
    return [f.replace(_TREE, "${ASC_TFLM}") for f in flags]


def _include_dirs(tree: Path, target: Target) -> list[Path]:
    flags = tflm_build.include_flags(tree, target) + tflm_build.dsp_flags(tree, target)
    return [Path(f[2:]) for f in flags if f.startswith("-I")]


def scan_headers(tree: Path, start: list[Path], include_dirs: list[Path]) -> set[Path]:
    """Every file under ``tree`` that ``start`` (paths) include, directly or not, through
    ``include_dirs`` (a quoted include is looked up beside its file first). Includes that resolve
    to no file (the compiler's and the C library's headers) are skipped."""
    tree = tree.resolve()
    found: set[Path] = set()
    todo = list(start)
    seen: set[Path] = set()
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        for kind, name in _INCLUDE.findall(f.read_text(errors="replace")):
            dirs = ([f.parent] if kind == '"' else []) + include_dirs
            for d in dirs:
                cand = (d / name)
                if cand.is_file():
                    cand = cand.resolve()
                    if cand.is_relative_to(tree) and cand not in found:
                        found.add(cand)
                        todo.append(cand)
                    break
    return found


def _archive_folders(tree: Path) -> dict[str, Path]:
    return {name: tree / DOWNLOADS / dest if dest else tree for name, (_, dest) in ARCHIVES.items()}


def _owner(rel: Path, folders: dict[str, Path], tree: Path) -> str:
    """The archive a tree-relative path comes from (TFLM's own unless under a downloads/ folder)."""
    for name, folder in folders.items():
        if folder != tree and rel.is_relative_to(folder.relative_to(tree)):
            return name
    return "tflite-micro.tar.gz"


def _sources_table(folder: Path) -> dict[str, tuple[str, str]]:
    """archive -> (upstream repository, commit) from the third-party folder's SOURCES.md."""
    md = folder / "SOURCES.md"
    rows = {}
    if md.is_file():
        for line in md.read_text().splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) >= 3 and cells[0].endswith(".tar.gz"):
                rows[cells[0]] = (cells[1], cells[2])
    return rows


def config_cmake(target: Target, *, tflm_sources: list[str], dsp_sources: list[str], model_sources: list[str]) -> str:
    """``bundle_config.cmake``: the constants of targets.py and tflm_build.py for ``target``."""
    tree = Path(_TREE)
    board = Path(target.linker_script).stem if target.linker_script else ""
    qemu = " ".join(("qemu-system-arm", *target.qemu, "-nographic", "-semihosting-config",
                     "enable=on,target=native", "-kernel", "build/asc_example.elf")) if target.qemu else ""
    values = {
        "ASC_TARGET": [target.name], "ASC_KERNELS": [target.kernels], "ASC_TOOLCHAIN_PREFIX": [target.prefix],
        "ASC_COMMON_FLAGS": COMMON_FLAGS, "ASC_CXX_FLAGS": CXX_FLAGS, "ASC_C_FLAGS": C_FLAGS,
        "ASC_ARCH_FLAGS": target.arch_flags, "ASC_CORE_OPT": [CORE_OPT], "ASC_KERNEL_OPT": [KERNEL_OPT],
        "ASC_PROGRAM_OPT": [PROGRAM_OPT],
        "ASC_INCLUDE_FLAGS": _tree_flags(tflm_build.include_flags(tree, target)),
        "ASC_DSP_FLAGS": _tree_flags(tflm_build.dsp_flags(tree, target)),
        "ASC_QEMU_LINK_FLAGS": target.link_flags, "ASC_BOARD_LINK_FLAGS": BOARD_LINK_FLAGS if target.prefix else (),
        "ASC_QEMU_DEFAULT_BOARD": [board], "ASC_QEMU_COMMAND": [qemu],
        "ASC_TFLM_SOURCES": tflm_sources, "ASC_DSP_SOURCES": dsp_sources, "ASC_MODEL_SOURCES": model_sources,
    }
    lines = ["# Generated by asc bundle from firmware_harness/targets.py and tflm_build.py. The flags are the",
             "# ones asc firmware compiles with and verifies bit for bit against TFLM's Python runtime;",
             "# ${ASC_TFLM} is the bundle's tflm/ folder (CMakeLists.txt sets it).", ""]
    for k, v in values.items():
        if len(v) > 4:
            lines += [f"set({k}", *(f"  {_cmake_list([x])}" for x in v), ")"]
        else:
            lines.append(f"set({k} {_cmake_list(v)})".replace(" )", ")"))
    if not target.prefix:  # the host build is g++'s, as asc firmware's
        lines += ["", "if(NOT DEFINED CMAKE_CXX_COMPILER AND NOT DEFINED ENV{CXX})", "  set(CMAKE_CXX_COMPILER g++)",
                  "endif()", "if(NOT DEFINED CMAKE_C_COMPILER AND NOT DEFINED ENV{CC})", "  set(CMAKE_C_COMPILER gcc)",
                  "endif()"]
    return "\n".join(lines) + "\n"


def _readme(*, target: Target, export_dir: Path, tflite_sha256: str, tp: third_party.ThirdParty,
            used: list[str], sources: int, headers: int) -> str:
    rows = _sources_table(tp.folder)
    lines = [f"# TFLM firmware bundle: {export_dir.name}/model.tflite for {target.name}", "",
             f"Written by `asc bundle` (asc-tinyml). Target: {target.description}. Model sha256 "
             f"`{tflite_sha256}`.", "",
             "```", "cmake -B build && cmake --build build -j 2", "```", "",
             "needs CMake 3.16 or later and " + ("g++" if not target.prefix else
                                                  "the GNU Arm toolchain (Debian: gcc-arm-none-eabi "
                                                  "libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib)")
             + "; no network, no Python. `build/asc_example` (`.elf` on Cortex-M) is the example (`app/main.cc`): a generated tone "
             "as the microphone, the exported front end, the model, the class (argmax of the int8 outputs, "
             "lowest index on ties).", ""]
    if target.prefix:
        board = Path(target.linker_script).stem
        lines += ["The example links with `board/board.ld` and `board/board_start.c`: placeholders. Replace them with "
                  "your board's linker script and start-up (or pass `-DASC_LINKER_SCRIPT=... -DASC_BOARD_STARTUP=...`). "
                  f"`-DASC_QEMU_BOARD={board}` links with `qemu/` instead, for QEMU with semihosting:", "",
                  "```", f"cmake -B build -DASC_QEMU_BOARD={board} && cmake --build build -j 2",
                  " ".join(("qemu-system-arm", *target.qemu, "-nographic", "-semihosting-config",
                            "enable=on,target=native", "-kernel", "build/asc_example.elf")), "```", ""]
    lines += [f"`bundle_config.cmake` holds the flags (`asc firmware`'s, the build it verifies bit for bit against "
              f"TFLM's Python runtime) and the {sources} sources: TFLM's runtime, only the kernels the model's "
              f"`RegisterModelOps` registers{', CMSIS-NN' if target.kernels == 'cmsis_nn' else ''}, the CMSIS-DSP "
              f"real FFT of the front end; {headers} headers are the ones these sources include. Keep the flags "
              "when you move the sources into your own build: `TF_LITE_STATIC_MEMORY` changes TFLM's structures, "
              "so your own code needs it too. Do not edit `model/`: export again.", "",
              "`asc_harness` (`harness/main.cc`) is asc-tinyml's test program: int8, log-mel or WAV inputs from "
              "files, int8 outputs to files (`--int8 FILE --clips N --out FILE`).", "",
              "## Sources and licences", "",
              "Each archive's licence files are kept beside its sources under `tflm/`. flatbuffers and kissfft "
              "carry TFLM's patches (`flatbuffers.patch`, `kissfft.patch`), as TFLM's Makefile applies them.", "",
              "| archive | upstream | commit | sha256 of the archive | in the bundle as |", "|---|---|---|---|---|"]
    folders = {name: (f"tflm/{DOWNLOADS / dest}/" if dest else "tflm/") for name, (_, dest) in ARCHIVES.items()}
    for name in used:
        repo, commit = rows.get(name, ("(SOURCES.md not found)", ""))
        lines.append(f"| {name} | {repo} | {commit} | `{tp.sha256[name]}` | `{folders[name]}` |")
    return "\n".join(lines) + "\n"


def make_bundle(export_dir: Path, out: Path, *, target: str = "host", third_party_dir: Path | None = None,
                log=print) -> Bundle:
    """Write the bundle of ``export_dir`` for ``target`` into ``out`` (staged, replacing only a
    previous bundle). Refuses an export whose files differ from what ``asc export`` recorded."""
    from firmware_harness.validate import load_checked_export
    from tflite_export.export import C_SOURCE_FILES

    if target not in BUNDLE_TARGETS:
        raise FirmwareError(f"asc bundle: target {target!r}; one of {', '.join(BUNDLE_TARGETS)}")
    tgt = get_target(target)
    export_dir, out = Path(export_dir), Path(out)
    artifacts.check_replaceable(out, stage=STAGE, inputs=(export_dir,))  # before any work
    _, exp, _ = load_checked_export(export_dir / "model.tflite")
    missing = [f for f in C_SOURCE_FILES if not (export_dir / f).is_file()]
    if missing:
        raise FirmwareError(f"{export_dir}: {missing} missing: re-run `asc export`")
    tp = third_party.locate_third_party(third_party_dir, log=log)
    tree = third_party.prepare_tflm_tree(tp, log=log).resolve()
    tflm_sources = tflm_build.select_sources(tree, third_party.library_sources(tree, kernels=tgt.kernels),
                                             resolver_methods(export_dir))
    dsp_sources = [str(s) for s in tflm_build.DSP_SOURCES]
    model_sources = [f for f in C_SOURCE_FILES if f.endswith((".cc", ".c"))]
    programs = [TEMPLATE_DIR / "app" / "main.cc", FIRMWARE_DIR / "main.cc"]
    start = [tree / s for s in tflm_sources + dsp_sources] + [export_dir / f for f in C_SOURCE_FILES] + programs
    # the program's own folders first, as its -I flags: an export header never resolves into the tree
    dirs = [export_dir.resolve(), FIRMWARE_DIR] + _include_dirs(tree, tgt)
    headers = scan_headers(tree, start, dirs)
    files = sorted({tree / s for s in tflm_sources + dsp_sources} | headers)
    folders = _archive_folders(tree)
    used = sorted({_owner(f.relative_to(tree), folders, tree) for f in files}, key=list(ARCHIVES).index)
    # BUNDLE.md says to build into OUT/build: a new bundle replaces that build (it is of the old sources)
    with artifacts.staging_dir(out, stage=STAGE, inputs=(export_dir,), derived=("build",)) as tmp:
        for f in files:
            dst = tmp / "tflm" / f.relative_to(tree)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, dst)
        for name in used:  # each archive's licence files, beside its sources
            src = folders[name]
            for lic in sorted(p for p in src.iterdir() if p.is_file() and _LICENSE.match(p.name)):
                dst = tmp / "tflm" / lic.relative_to(tree)
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(lic, dst)
        (tmp / "model").mkdir()
        for f in C_SOURCE_FILES:
            shutil.copyfile(export_dir / f, tmp / "model" / f)
        (tmp / "app").mkdir()
        shutil.copyfile(TEMPLATE_DIR / "app" / "main.cc", tmp / "app" / "main.cc")
        (tmp / "harness").mkdir()
        for f in ("main.cc", "asc_profile.h"):
            shutil.copyfile(FIRMWARE_DIR / f, tmp / "harness" / f)
        shutil.copyfile(TEMPLATE_DIR / "CMakeLists.txt", tmp / "CMakeLists.txt")
        if tgt.prefix:
            shutil.copyfile(TEMPLATE_DIR / "toolchain-arm-none-eabi.cmake", tmp / "toolchain-arm-none-eabi.cmake")
            shutil.copytree(TEMPLATE_DIR / "board", tmp / "board")
            (tmp / "qemu").mkdir()
            for f in ("startup.S", "cstart.c", "cortex_m_sections.ld", tgt.linker_script):
                shutil.copyfile(FIRMWARE_DIR / "cortex_m" / f, tmp / "qemu" / f)
        artifacts.atomic_write_text(tmp / "bundle_config.cmake", config_cmake(
            tgt, tflm_sources=tflm_sources, dsp_sources=dsp_sources, model_sources=model_sources))
        artifacts.atomic_write_text(tmp / "BUNDLE.md", _readme(
            target=tgt, export_dir=export_dir.resolve(), tflite_sha256=exp.tflite_sha256, tp=tp, used=used,
            sources=len(tflm_sources) + len(dsp_sources) + len(model_sources), headers=len(headers)))
        artifacts.write_json(tmp / "bundle.json", {
            "target": tgt.name, "export_dir": str(export_dir.resolve()), "tflite_sha256": exp.tflite_sha256,
            "archives_sha256": {n: tp.sha256[n] for n in used}, "sources": tflm_sources + dsp_sources,
            **artifacts.provenance()})
        written = [p for p in tmp.rglob("*") if p.is_file()]
        n_files, n_bytes = len(written), sum(p.stat().st_size for p in written)
    log(f"bundle: {out} for {tgt.name}: {n_files} files ({n_bytes / 1e6:.1f} MB), "
        f"{len(tflm_sources) + len(dsp_sources) + len(model_sources)} sources, {len(headers)} headers")
    return Bundle(out, tgt.name, len(tflm_sources) + len(dsp_sources) + len(model_sources), len(headers),
                  n_files, n_bytes)
