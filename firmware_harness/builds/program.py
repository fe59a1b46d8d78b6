"""Build the firmware program (``firmware/main.cc``) for an export and a target, and run it.

The program is compiled from the export's files (:data:`~tflite_export.export.C_SOURCE_FILES`: the
generated ``model_data.cc``, ``model_input.h``, ``model_settings.h``, ``model_frontend.cc/.h`` and
the fixed C++ copied beside them, ``asc_*.h``/``asc_frontend.cc``; every ``.cc`` among them is
compiled) and ``firmware/``, linked with the cached TFLM
and CMSIS-DSP libraries (:mod:`firmware_harness.builds.tflm_build`), into ``OUT/asc_firmware`` (host) or ``OUT/asc_firmware.elf``
with a map file (Cortex-M). It is rebuilt on every call (seconds), so it always matches the export.
A folder generated for any int8 .tflite (:mod:`firmware_harness.model_file`: ``model_data.cc/.h`` and
a ``model_settings.h`` that defines ``MODEL_NO_FRONTEND``) builds the same program without the front end.

A run writes its inputs to files (or lists WAV files for the front end), starts the program
natively or under ``qemu-system-arm`` with semihosting (the program's ``fopen`` then opens host
files), and reads back the int8 outputs, the int8 inputs it computed, and the ``key=value`` lines
it printed.
"""
from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import hashlib
import re
import subprocess
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from firmware_harness.builds import tflm_build, third_party
from firmware_harness.builds.targets import Target, get_target
from firmware_harness.builds.third_party import FirmwareError
from tflite_export.export import C_SOURCE_FILES

FIRMWARE_DIR = third_party.repo_root() / "firmware"
PROGRAM_OPT = "-O2"
MAX_CHUNK_SAMPLES = 2048  # kMaxChunkSamples in firmware/main.cc: the program's microphone buffer
#: the files of a sources folder generated for a model without the front end (MODEL_NO_FRONTEND)
MODEL_ONLY_SOURCE_FILES = ("model_data.cc", "model_data.h", "model_settings.h")


@dataclasses.dataclass(frozen=True)
class Program:
    target: Target
    path: Path  # executable (host) or ELF (Cortex-M)
    map_file: Path | None
    library: tflm_build.LibraryBuild
    dsp_library: tflm_build.LibraryBuild
    build_seconds: float  # libraries (cached or not) + program


def resolver_methods(export_dir: Path) -> list[str]:
    """The ``resolver.AddXxx()`` calls of the export's ``RegisterModelOps``."""
    header = (Path(export_dir) / "model_settings.h").read_text()
    return re.findall(r"resolver\.(Add\w+)\(\)", header)


def has_frontend(export_dir: Path) -> bool:
    """Whether the folder's ``model_settings.h`` is an export's (log-mel input, front end), not one
    generated for a model without them (``#define MODEL_NO_FRONTEND``)."""
    header = Path(export_dir) / "model_settings.h"
    return not (header.is_file() and "#define MODEL_NO_FRONTEND" in header.read_text())


def _run_tool(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise FirmwareError(f"{what} failed:\n$ {' '.join(cmd)}\n{proc.stderr[-4000:]}")


def build_program(export_dir: Path, target: Target, out_dir: Path, *, tree: Path, log=print) -> Program:
    """Compile and link the firmware program for ``export_dir`` into ``out_dir``."""
    export_dir, out_dir = Path(export_dir).resolve(), Path(out_dir).resolve()
    frontend = has_frontend(export_dir)
    files = C_SOURCE_FILES if frontend else MODEL_ONLY_SOURCE_FILES
    missing = [f for f in files if not (export_dir / f).is_file()]
    if missing:
        raise FirmwareError(f"{export_dir}: {missing} missing; this export predates the firmware sources "
                            "or is incomplete: re-run `asc export`")
    target.check_tools()
    t0 = time.perf_counter()
    lib = tflm_build.build_library(tree, target, resolver_methods(export_dir), log=log)
    dsp = tflm_build.build_dsp_library(tree, target, log=log)
    out_dir.mkdir(parents=True, exist_ok=True)
    objs_dir = out_dir / "obj"
    objs_dir.mkdir(exist_ok=True)
    sources = [FIRMWARE_DIR / "main.cc", *(export_dir / f for f in files if f.endswith(".cc"))]
    if target.emulated:
        sources += [FIRMWARE_DIR / "cortex_m" / "startup.S", FIRMWARE_DIR / "cortex_m" / "cstart.c"]
    objects = []
    for src in sources:
        obj = objs_dir / f"{src.name}.o"
        cmd = tflm_build.compile_command(tree, target, str(src), opt=PROGRAM_OPT, dsp=True)
        _run_tool([*cmd, f"-I{export_dir}", "-o", str(obj)], f"compiling {src.name} for {target.name}")
        objects.append(str(obj))
    exe = out_dir / ("asc_firmware.elf" if target.emulated else "asc_firmware")
    link = [f"{target.prefix}g++", *target.arch_flags, *target.link_flags, "-Wl,--gc-sections",
            "-o", str(exe), *objects, str(lib.path), str(dsp.path), "-lm"]
    map_file = None
    if target.emulated:
        map_file = out_dir / "asc_firmware.map"
        link += [f"-T{FIRMWARE_DIR / 'cortex_m' / target.linker_script}", f"-L{FIRMWARE_DIR / 'cortex_m'}",
                 f"-Wl,-Map={map_file}"]
    _run_tool(link, f"linking the firmware for {target.name}")
    return Program(target, exe, map_file, lib, dsp, time.perf_counter() - t0)


@dataclasses.dataclass(frozen=True)
class ProgramRun:
    outputs: np.ndarray  # (inferences, classes) int8: one per clip, or per window of a windowed model
    inputs: np.ndarray  # (inferences, input elements) int8, as the program computed or read them
    clip_sums: np.ndarray | None  # windowed model: (clips, classes) int32, the program's ClipAccumulator
    clip_decisions: np.ndarray | None  # windowed model: (clips,) its ClipAccumulatorDecision
    arena_used_bytes: int
    header_arena_bytes: int
    invoke_seconds: float  # sum over clips, by the program's clock() (QEMU: host time of emulation)
    stack_used_bytes: int | None  # Cortex-M only: deepest stack use of the program, measured
    wall_seconds: float
    dump: Path | None


ALLOCATION_FAILED = "Failed to allocate"


class ArenaTooSmall(FirmwareError):
    """The header's kTensorArenaSize is smaller than this build of TFLM needs."""


#: newlib's rdimon crt0 reads the semihosted command line into a buffer of this many bytes
SEMIHOSTING_CMDLINE_MAX = 255


def _command(program: Program, args: list[str], qemu_args: Sequence[str] = ()) -> list[str]:
    """The command line; file arguments are names relative to the run's work folder (its cwd).
    ``qemu_args`` go to ``qemu-system-arm`` (e.g. ``-plugin``: :mod:`firmware_harness.icount`)."""
    if not program.target.emulated:
        return [str(program.path), *args]
    argv = ["asc_firmware", *args]
    if len(" ".join(argv)) >= SEMIHOSTING_CMDLINE_MAX:
        raise FirmwareError(f"command line too long for semihosting ({len(' '.join(argv))} bytes): {argv}")
    # QEMU's option syntax: a comma inside a value is written twice
    cmdline = ",".join(f"arg={a.replace(',', ',,')}" for a in argv)
    return ["qemu-system-arm", *program.target.qemu, "-nographic", "-monitor", "none", "-serial", "none",
            "-semihosting-config", f"enable=on,target=native,{cmdline}", "-kernel", str(program.path), *qemu_args]


def _parse(stdout: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line and " " not in line.split("=", 1)[0])


def _execute(program: Program, args: list[str], work: Path, *, timeout: float,
             qemu_args: Sequence[str] = ()) -> dict[str, str]:
    """Run the program in ``work`` (file arguments are relative to it); its ``key=value`` lines.

    Raises :class:`ArenaTooSmall` when TFLM cannot allocate in the arena, and
    :class:`FirmwareError` for any other failure (with the program's output)."""
    try:
        proc = subprocess.run(_command(program, args, qemu_args), capture_output=True, text=True, timeout=timeout,
                              cwd=work)
    except subprocess.TimeoutExpired:
        raise FirmwareError(f"{program.path} ({program.target.name}) did not finish in {timeout:.0f} s "
                            f"({' '.join(args)})") from None
    kv = _parse(proc.stdout)
    if proc.returncode != 0 and ("arena" in kv.get("error", "") or ALLOCATION_FAILED in proc.stdout + proc.stderr):
        # TFLM either fails AllocateTensors or, on a very small arena, crashes after its own
        # "Failed to allocate" messages (an unsigned underflow in its allocator: seen with 4 KiB)
        raise ArenaTooSmall(f"exit status {proc.returncode}: {kv.get('error', '')}"
                            f"{(proc.stdout + proc.stderr)[-500:]}")
    if proc.returncode != 0 or kv.get("status") != "ok":
        raise FirmwareError(f"{program.path} ({program.target.name}) failed with exit status {proc.returncode}:\n"
                            f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return kv


def run_program(program: Program, work: Path, *, logmel: np.ndarray | None = None, int8: np.ndarray | None = None,
                dump_clip: int | None = None, timeout: float | None = None, extra_args: Sequence[str] = (),
                qemu_args: Sequence[str] = ()) -> ProgramRun:
    """Run ``program`` on ``logmel`` (clips, mels, frames) float32 or ``int8`` (clips, elements).
    ``extra_args`` are appended to the program's arguments (``--profile ops``), ``qemu_args`` to QEMU's.

    Raises :class:`ArenaTooSmall` when TFLM cannot allocate in the header's arena, and
    :class:`FirmwareError` for any other failure (with the program's output).
    """
    if (logmel is None) == (int8 is None):
        raise ValueError("give exactly one of logmel and int8")
    work = Path(work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    data = np.ascontiguousarray(logmel, "<f4") if logmel is not None else np.ascontiguousarray(int8, np.int8)
    clips = len(data)
    src = work / ("inputs_logmel.f32" if logmel is not None else "inputs_given.i8")
    _write_blocks(data, src)
    out, used_inputs, clip_out = work / "outputs.i8", work / "inputs.i8", work / "clips.i32"
    args = ["--logmel" if logmel is not None else "--int8", src.name, "--clips", str(clips),
            "--out", out.name, "--inputs-out", used_inputs.name, "--clip-out", clip_out.name]
    dump = None
    if dump_clip is not None:
        dump = work / f"tensors{dump_clip}.bin"
        args += ["--dump", dump.name, "--dump-clip", str(dump_clip)]
    timeout = timeout or 120 + (5 if program.target.emulated else 2) * clips
    t0 = time.perf_counter()
    kv = _execute(program, [*args, *extra_args], work, timeout=timeout, qemu_args=qemu_args)
    wall = time.perf_counter() - t0
    outputs, inputs, sums, decisions = _read_outputs(kv, out, used_inputs, clip_out, clips=clips)
    for f in (src, out, used_inputs, clip_out):
        f.unlink(missing_ok=True)
    stack = kv.get("stack_used_bytes")
    return ProgramRun(outputs, inputs, sums, decisions, int(kv["arena_used_bytes"]), int(kv["kTensorArenaSize"]),
                      float(kv["invoke_seconds"]), int(stack) if stack else None, wall, dump)


def _write_blocks(data: np.ndarray, path: Path, *, block: int = 64) -> None:
    """``data`` (items, ...) to ``path`` as raw bytes, ``block`` items at a time: a memory-mapped feature
    array is written without a whole in-memory copy."""
    with open(path, "wb") as f:
        for i in range(0, len(data), block):
            np.ascontiguousarray(data[i:i + block]).tofile(f)


def _slices(n: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous, nearly equal ranges covering ``range(n)`` (empty ones dropped)."""
    edges = np.linspace(0, n, max(1, min(parts, n)) + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def _in_parallel(fn, slices: list[tuple[int, int]]) -> list:
    """``fn(k, start, stop)`` for every slice, each in its own thread (each starts one program process and
    waits for it, so the threads only wait); results in slice order. A failure in any is raised."""
    if len(slices) == 1:
        return [fn(0, *slices[0])]
    with cf.ThreadPoolExecutor(len(slices)) as pool:
        futures = [pool.submit(fn, k, a, b) for k, (a, b) in enumerate(slices)]
        return [f.result() for f in futures]


def _cat(parts: list, name: str):
    values = [getattr(p, name) for p in parts]
    return None if values[0] is None else np.concatenate(values)


def run_program_parallel(program: Program, work: Path, *, logmel: np.ndarray, workers: int,
                         timeout: float | None = None) -> ProgramRun:
    """:func:`run_program` on ``logmel`` (clips, mels, frames) float32, split into ``workers`` contiguous
    slices of clips, each run by its own program process in ``work/part<k>`` (many clips per process, one
    start-up each); the results are joined in clip order, exactly as one process would have written them
    (each clip's inferences depend on that clip only). Emulated targets and ``workers <= 1`` run one process."""
    if program.target.emulated or workers <= 1 or len(logmel) < 2:
        return run_program(program, work, logmel=logmel, timeout=timeout)
    t0 = time.perf_counter()
    parts = _in_parallel(lambda k, a, b: run_program(program, Path(work) / f"part{k}", logmel=logmel[a:b],
                                                     timeout=timeout), _slices(len(logmel), workers))
    return ProgramRun(
        outputs=_cat(parts, "outputs"), inputs=_cat(parts, "inputs"), clip_sums=_cat(parts, "clip_sums"),
        clip_decisions=_cat(parts, "clip_decisions"), arena_used_bytes=parts[0].arena_used_bytes,
        header_arena_bytes=parts[0].header_arena_bytes, invoke_seconds=sum(p.invoke_seconds for p in parts),
        stack_used_bytes=None, wall_seconds=time.perf_counter() - t0, dump=None)


def _read_outputs(kv: dict[str, str], out: Path, inputs: Path, clip_out: Path, *, clips: int):
    """The program's output files: per-inference outputs and inputs, and for a windowed model the
    per-clip accumulator (``kNumClasses`` int32 sums and the int32 decision per clip)."""
    n = int(kv["inferences"])
    outputs = np.fromfile(out, np.int8).reshape(n, -1)
    used = np.fromfile(inputs, np.int8).reshape(n, -1)
    sums = decisions = None
    if clip_out.is_file() and clip_out.stat().st_size:
        rec = np.fromfile(clip_out, "<i4").reshape(clips, outputs.shape[1] + 1)
        sums, decisions = rec[:, :-1], rec[:, -1]
    return outputs, used, sums, decisions


@dataclasses.dataclass(frozen=True)
class AudioRun:
    """A ``--wav-list`` run: PCM through the exported front end, then the model."""

    outputs: np.ndarray  # (inferences, classes) int8: per clip, or per window of a windowed model
    inputs: np.ndarray  # (inferences, input elements) int8, as the front end wrote them
    clip_sums: np.ndarray | None  # windowed model: (clips, classes) int32 ClipAccumulator sums
    clip_decisions: np.ndarray | None
    logmel: np.ndarray  # (clips, mels, clip frames) float32 dB, as the front end computed it
    chunk_samples: int
    frontend_seconds: float  # sum over clips, file reads excluded (QEMU: host time of emulation)
    frontend_frames: int
    frontend_state_bytes: int  # sizeof(FrontEnd)
    pcm_chunk_bytes: int  # the program's microphone-chunk buffer
    invoke_seconds: float
    stack_used_bytes: int | None
    invokes_skipped: int = 0  # inferences not invoked: input identical to the known (--logmel) input


def run_program_audio(program: Program, work: Path, *, wav_paths: list[Path], n_mels: int,
                      chunk: int | None = None, timeout: float | None = None, extra_args: Sequence[str] = (),
                      qemu_args: Sequence[str] = (), known_inputs: np.ndarray | None = None,
                      known_outputs: np.ndarray | None = None) -> AudioRun:
    """Run ``program`` on WAV files (absolute paths): front end, then inference, per clip.
    ``extra_args`` and ``qemu_args`` as for :func:`run_program`.

    ``known_inputs`` (inferences, elements) int8 and ``known_outputs`` (inferences, classes) int8 (host
    targets only): what this same program computed for the same inferences from the training log-mel
    (:func:`run_program`); an inference whose front-end input is identical to its known input is not
    invoked again (same binary, same input: same output), its known output is written instead and it is
    counted in ``invokes_skipped``. Every input is still computed, written and compared by the caller."""
    work = Path(work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    listing = work / "wavs.txt"
    listing.write_text("".join(f"{Path(p).resolve()}\n" for p in wav_paths))
    clips = len(wav_paths)
    out, used_inputs, logmel, clip_out = work / "outputs.i8", work / "inputs.i8", work / "logmel.f32", work / "clips.i32"
    args = ["--wav-list", listing.name, "--clips", str(clips), "--out", out.name, "--inputs-out", used_inputs.name,
            "--logmel-out", logmel.name, "--clip-out", clip_out.name]
    known = []
    if known_inputs is not None:
        if program.target.emulated:
            raise ValueError("known inputs are a host harness speed-up; an emulated run invokes every inference")
        known = [work / "known_inputs.i8", work / "known_outputs.i8"]
        _write_blocks(np.asarray(known_inputs, np.int8), known[0])
        _write_blocks(np.asarray(known_outputs, np.int8), known[1])
        args += ["--known-inputs", known[0].name, "--known-outputs", known[1].name]
    if chunk is not None:
        args += ["--chunk", str(chunk)]
    timeout = timeout or 120 + (15 if program.target.emulated else 2) * clips
    kv = _execute(program, [*args, *extra_args], work, timeout=timeout, qemu_args=qemu_args)
    outputs, inputs, sums, decisions = _read_outputs(kv, out, used_inputs, clip_out, clips=clips)
    run = AudioRun(
        outputs=outputs, inputs=inputs, clip_sums=sums, clip_decisions=decisions,
        logmel=np.fromfile(logmel, "<f4").reshape(clips, n_mels, -1),
        chunk_samples=int(kv["chunk_samples"]), frontend_seconds=float(kv["frontend_seconds"]),
        frontend_frames=int(kv["frontend_frames"]), frontend_state_bytes=int(kv["frontend_state_bytes"]),
        pcm_chunk_bytes=int(kv["pcm_chunk_bytes"]), invoke_seconds=float(kv["invoke_seconds"]),
        stack_used_bytes=int(kv["stack_used_bytes"]) if "stack_used_bytes" in kv else None,
        invokes_skipped=int(kv.get("invokes_skipped", 0)))
    for f in (listing, out, used_inputs, logmel, clip_out, *known):
        f.unlink(missing_ok=True)
    return run


def run_program_audio_parallel(program: Program, work: Path, *, wav_paths: list[Path], n_mels: int, workers: int,
                               chunk: int | None = None, known_inputs: np.ndarray | None = None,
                               known_outputs: np.ndarray | None = None) -> AudioRun:
    """:func:`run_program_audio` split into ``workers`` contiguous slices of clips, one program process each
    (``work/part<k>``), joined in clip order (see :func:`run_program_parallel`). ``known_*`` are per
    inference, the same number per clip."""
    if program.target.emulated or workers <= 1 or len(wav_paths) < 2:
        return run_program_audio(program, work, wav_paths=wav_paths, n_mels=n_mels, chunk=chunk,
                                 known_inputs=known_inputs, known_outputs=known_outputs)
    per = len(known_inputs) // len(wav_paths) if known_inputs is not None else 0

    def part(k: int, a: int, b: int) -> AudioRun:
        ki = known_inputs[a * per:b * per] if known_inputs is not None else None
        ko = known_outputs[a * per:b * per] if known_outputs is not None else None
        return run_program_audio(program, Path(work) / f"part{k}", wav_paths=wav_paths[a:b], n_mels=n_mels,
                                 chunk=chunk, known_inputs=ki, known_outputs=ko)

    parts = _in_parallel(part, _slices(len(wav_paths), workers))
    p0 = parts[0]
    return AudioRun(
        outputs=_cat(parts, "outputs"), inputs=_cat(parts, "inputs"), clip_sums=_cat(parts, "clip_sums"),
        clip_decisions=_cat(parts, "clip_decisions"), logmel=_cat(parts, "logmel"), chunk_samples=p0.chunk_samples,
        frontend_seconds=sum(p.frontend_seconds for p in parts), frontend_frames=sum(p.frontend_frames for p in parts),
        frontend_state_bytes=p0.frontend_state_bytes, pcm_chunk_bytes=p0.pcm_chunk_bytes,
        invoke_seconds=sum(p.invoke_seconds for p in parts), stack_used_bytes=None,
        invokes_skipped=sum(p.invokes_skipped for p in parts))


def measure_arena(program: Program, work: Path, *, input_elements: int) -> int:
    """The arena this build needs: ``arena_used_bytes`` with a large scratch arena."""
    work = Path(work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    src, out = work / "probe.i8", work / "probe_out.i8"
    src.write_bytes(bytes(input_elements))
    kv = _execute(program, ["--int8", src.name, "--clips", "1", "--out", out.name, "--measure-arena"], work,
                  timeout=300)
    for f in (src, out):
        f.unlink(missing_ok=True)
    return int(kv["arena_used_bytes"])


def read_tensor_dump(path: Path) -> dict[int, tuple[int, bytes]]:
    """The program's ``--dump`` file: tensor index -> (TfLiteType, raw bytes)."""
    raw = Path(path).read_bytes()
    if raw[:8] != b"ASCDUMP1":
        raise FirmwareError(f"{path}: not a tensor dump of the firmware program")
    count = int.from_bytes(raw[8:12], "little")
    pos, out = 12, {}
    for _ in range(count):
        index, ttype, nbytes = np.frombuffer(raw, "<i4", 3, pos)
        pos += 12
        out[int(index)] = (int(ttype), raw[pos:pos + int(nbytes)])
        pos += int(nbytes)
    return out


def build_inputs_sha256(export_dir: Path, tp: third_party.ThirdParty, targets: tuple[str, ...]) -> str:
    """Hash of everything a firmware check's result depends on besides the data: the program's
    sources, the export's C sources, the TFLM archives and the targets' flag sets. A stored report
    is reused only when this matches."""
    h = hashlib.sha256(tp.key.encode())
    files = sorted(FIRMWARE_DIR.rglob("*")) + [Path(export_dir) / f for f in C_SOURCE_FILES]
    for f in files:
        if f.is_file():
            h.update(f.name.encode() + f.read_bytes())
    for name in targets:
        h.update(repr(dataclasses.astuple(get_target(name))).encode())
    return h.hexdigest()
