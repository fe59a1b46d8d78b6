"""``asc board run``: the export's evaluate clips through the board over its UART, bit for bit
against TFLM's Python runtime, from log-mel and from PCM.

For a stratified (scene x device) sample of evaluate clips (``clips``, or "all"), and a stratified
sample of those (``pcm_clips``) from PCM (1.3 MB per 10-s clip: about 2 minutes at 115200 baud):

* **from log-mel**: each inference's int8 input (the Python formula on the training features,
  per window of a windowed model) is sent as one binary block (``bin``), run (``infer 1 0``),
  and its int8 output compared with TFLM Python's on the same input;
* **from PCM**: each clip's WAV samples go to the board's front end in chunks (``pcm``); every
  window's input CRC-32 is compared with the Python formula's input. Where they are equal the
  output must equal TFLM Python's on that input; where the front end computed another input (the
  float32 front end against librosa's float64, as ``asc firmware --from-audio`` measures), the
  clip is sent again with its inputs dumped and the board's outputs are compared with TFLM Python
  run on the board's own inputs. The board's clip decision must equal the Python accumulation of
  its window outputs.

Cycles: the board's DWT counter, per inference and per operator, in ms at the clock the board
reports running; "not measured" where the counter does not advance (QEMU). Beside it, ``asc
profile``'s estimate for the same chip when EXPORT/profile holds one for this model.

Writes ``board_report.json`` and ``.md`` (default ``EXPORT/board/<board>/run``) through
:func:`keras_asc.artifacts.staging_dir`. A protocol failure stops the run with
:class:`~firmware_harness.board.protocol.BoardError`: no report claims clips it did not compare.
"""
from __future__ import annotations

import dataclasses
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf

from firmware_harness.board.boards import get_board
from firmware_harness.board.protocol import DEFAULT_BAUD, DEFAULT_TIMEOUT, BoardError, BoardLink, BoardProfile
from firmware_harness.builds import program as fw_program
from firmware_harness.builds import third_party
from firmware_harness.builds.targets import get_target
from firmware_harness.firmware.check import TflmTruth, localize_output_difference, sampled_rows
from firmware_harness.firmware.from_audio import check_audio_files, dataset_audio
from firmware_harness.profiling.profile import read_profile_report
from firmware_harness.validation.export_validation import header_arena_bytes, load_checked_export, quantize_features
from keras_asc import artifacts, records
from keras_asc.dataset import stratified_sample
from keras_asc.feature_cache import build_feature_cache
from keras_asc.windows import split_windows
from tflite_export.flatbuffer import io_tensors, read_model_shared
from tflite_export.window_combine import accumulate_windows, clip_decisions

STAGE = "board-run"
DEFAULT_CLIPS = 10  # from log-mel: 21 windows of 1,792 bytes each, about 53 s per 10 demo clips at 115200 baud
DEFAULT_PCM_CLIPS = 2  # from PCM: 1.3 MB per 10-s clip, about 2 minutes each at 115200 baud
NOT_MEASURED = "not measured"


@dataclasses.dataclass(frozen=True)
class PathResult:
    """One way into the model (``log-mel`` or ``pcm``) over the sampled clips."""

    path: str
    clips: int
    inferences: int
    identical: int  # clips whose every output equals TFLM Python's (on the board's own input for PCM)
    inputs_identical: int  # PCM: clips whose front-end inputs all equal the Python formula's; log-mel: clips
    decisions_identical: int | None  # PCM: clips whose board decision equals the Python accumulation of its outputs
    first_difference: dict | None


@dataclasses.dataclass(frozen=True)
class BoardRunReport(records.PassedWithoutFailures):
    """``board_report.json``."""

    export_dir: str
    tflite_sha256: str
    board: str
    port: str
    profile: BoardProfile
    clips: int
    paths: tuple[PathResult, ...]
    cycles_per_inference: float | None  # mean over the log-mel path's inferences; None: not measured
    ms_per_inference: float | None  # at profile.clock_hz
    operators: tuple[dict, ...]  # op, cycles, ms of the last inference; empty when not measured
    estimated_ms_per_inference: float | None  # asc profile's estimate for this chip, if EXPORT/profile has one
    estimate_note: str
    estimate_error_percent: float | None  # (measured - estimated) / estimated
    wire_bytes: int  # sent + received over the run
    wire_seconds: float
    seconds: float
    failures: tuple[str, ...]
    packages: dict[str, str]
    git_commit: str
    truth: str = "tflite-micro Python runtime (TFLM reference kernels)"
    stage: str = STAGE


def read_board_report(out_dir: Path) -> BoardRunReport:
    return records.read(BoardRunReport, Path(out_dir) / "board_report.json")


def wav_pcm(path: Path) -> tuple[bytes, int]:
    """A mono 16- or 24-bit WAV's samples as the board takes them: raw little-endian, 2 or 3 bytes each."""
    info = sf.info(str(path))
    if info.subtype == "PCM_16":
        return sf.read(str(path), dtype="int16")[0].astype("<i2").tobytes(), 2
    samples = (sf.read(str(path), dtype="int32")[0] >> 8).astype("<i4")  # 24-bit values
    return samples.view(np.uint8).reshape(-1, 4)[:, :3].tobytes(), 3


def _difference(path: str, clip: str, index: int, window: int, got: np.ndarray, want: np.ndarray) -> dict:
    d = np.abs(got.astype(int) - want.astype(int))
    return {"path": path, "clip": clip, "index": index, "window": window, "elements_differing": int((d > 0).sum()),
            "max_abs_diff_lsb": int(d.max()), "board": got.tolist(), "tflm_python": want.tolist()}


def localize_on_emulator(board_name: str, export_dir: Path, model: bytes, x: np.ndarray, *, arena: int,
                         log=print) -> dict:
    """Where the board's first differing inference goes wrong, as far as the host can tell: the same input
    ``x`` (input elements,) int8 run by the board's firmware target (the same TFLM objects and flags) under
    QEMU with every tensor dumped, operator by operator against TFLM Python
    (:func:`firmware_harness.firmware.check.localize_output_difference`). The board sends no tensor dump."""

    target = get_target(get_board(board_name).firmware_target)
    if target.missing_tools():
        return {"localized_on": None, "explanation": f"not localized: {', '.join(target.missing_tools())} missing"}
    tree = third_party.prepare_tflm_tree(third_party.locate_third_party(log=log), log=log)
    (inp,), _ = io_tensors(read_model_shared(model))
    with tempfile.TemporaryDirectory(prefix="asc-board-localize-") as tmp:
        prog = fw_program.build_program(export_dir, target, Path(tmp), tree=tree, log=log)
        d = localize_output_difference(prog, model, np.asarray(x, np.int8).reshape(inp.shape[1:]), arena=arena,
                                       work=Path(tmp) / "work")
    where = f"{target.name} under QEMU ({' '.join(target.qemu)})"
    if d.get("op") is None:
        return {"localized_on": where, "explanation": (
            f"the board's kernels built for {where} agree with TFLM Python at every operator on this input: the "
            "difference is the board's (its memory, clock or wire), not the kernels'")}
    return {"localized_on": where, **d}


def _estimate(export_dir: Path, board: str, tflite_sha256: str) -> tuple[float | None, str]:
    folder = Path(export_dir) / "profile"
    report = artifacts.read_or_none(read_profile_report, folder)
    if report is None:
        return None, f"no estimate: {folder} holds no profile (run `asc profile {export_dir}`)"
    if report.tflite_sha256 != tflite_sha256:
        return None, f"no estimate: {folder} profiled another model (run `asc profile {export_dir}` again)"
    row = next((m for m in report.mcus if m.mcu == board), None)
    if row is None:
        return None, f"no estimate: {folder} has no row for {board}"
    return row.ms_per_inference, f"asc profile's estimate for {board} at {row.clock_hz / 1e6:g} MHz ({folder})"


def run_board(export_dir: Path, data_dir: Path, work_dir: Path, *, board: str, port: str,
              clips: int | str = DEFAULT_CLIPS, out_dir: Path | None = None, baud: int = DEFAULT_BAUD,
              timeout: float = DEFAULT_TIMEOUT, pcm_clips: int | str = DEFAULT_PCM_CLIPS, workers: int = 2,
              log=print) -> BoardRunReport:
    """Run ``clips`` evaluate clips of ``export_dir`` on the board at ``port`` from log-mel, and a stratified
    ``pcm_clips`` of them (0: none; "all") from PCM; write and return the report (``report.failures`` lists
    differences). Raises :class:`BoardError` when the board or the wire fails."""

    t0 = time.perf_counter()
    b = get_board(board)
    export_dir = Path(export_dir)
    out_dir = Path(out_dir) if out_dir else export_dir / "board" / b.name / "run"
    inputs = (Path(data_dir), Path(work_dir))
    artifacts.check_replaceable(out_dir, stage=STAGE, inputs=inputs)
    model, exp, quant = load_checked_export(export_dir / "model.tflite", log=log)
    link = BoardLink(port, baud=baud, timeout=timeout)  # a port that cannot be opened is refused before any work
    with link:
        fs = build_feature_cache(data_dir, work_dir, config=exp.features, workers=workers, log=log,
                                 train_split=exp.train_split)
        table = fs.table("evaluate")
        rows = sampled_rows(table, clips=clips)
        k = exp.windows.per_clip if exp.windows else 1
        logmel = fs.features("evaluate")  # memory-mapped: only the sampled rows are read
        expected = quantize_features(logmel[rows] if len(rows) < len(table) else logmel, quant=quant)
        if exp.windows is not None:
            expected = split_windows(expected, window=exp.windows.frames, hop=exp.windows.hop)
        arena = max(header_arena_bytes(export_dir), exp.size.arena_recommended_bytes)
        truth = TflmTruth(model, expected, arena=arena, workers=workers)  # (inferences, mels, frames, 1) int8
        truth_out = truth.outputs(np.arange(len(expected)))  # before the board is asked anything
        expected = expected.reshape(len(expected), -1)
        wavs = None
        pcm_at = _pcm_positions(table, rows, pcm_clips)  # positions in rows
        if len(pcm_at):  # those clips' files, checked by content against their features
            wavs = dataset_audio(data_dir, table.iloc[rows[pcm_at]])
            check_audio_files(wavs, sample_rate=exp.features.sample_rate)
        names = [str(table["filename"].iloc[r]) for r in rows]
        link.sync()
        prof = link.profile()
        if prof.model_crc32 != zlib.crc32(model):
            raise BoardError(f"the board at {port} runs another model (crc32 {prof.model_crc32:08x}; {export_dir}/"
                             f"model.tflite is {zlib.crc32(model):08x}): flash the image of `asc board build {export_dir} "
                             f"--board {b.name}`")
        if prof.input_bytes != expected.shape[1] or prof.windows != k:
            raise BoardError(f"the board's model takes {prof.input_bytes} bytes in {prof.windows} window(s) per clip; "
                             f"the export {expected.shape[1]} in {k}")
        log(f"board: {prof.board} ({prof.chip}) at {port}: {prof.clock_hz / 1e6:g} MHz ({prof.clock_note}); "
            f"cycles {'measured' if prof.cycles_measured else NOT_MEASURED}; {len(rows)} clip(s) x {k} window(s)")
        wire0 = time.perf_counter()
        paths, failures, cycles, ops = [], [], [], ()
        # --- from log-mel: the Python formula's int8 inputs
        got = np.zeros_like(truth_out)
        for c, name in enumerate(names):
            for w in range(k):
                link.context = f"clip {name} (evaluate index {rows[c]}), window {w}, from log-mel"
                i = c * k + w
                inf = link.infer(expected[i].tobytes(), output_bytes=prof.output_bytes)
                got[i] = np.frombuffer(inf.output, np.int8)
                cycles.append(inf.cycles)
                ops = inf.ops
            log(f"board: log-mel {c + 1}/{len(names)} {name}")
        same = (got == truth_out).all(axis=1).reshape(len(rows), k)
        first, first_input = None, None
        if not same.all():
            i = int(np.flatnonzero(~same.ravel())[0])
            first = _difference("log-mel", names[i // k], int(rows[i // k]), i % k, got[i], truth_out[i])
            first_input = expected[i]
            failures.append(f"from log-mel: int8 outputs differ from TFLM Python on {int((~same.all(axis=1)).sum())} "
                            f"of {len(rows)} clip(s); first {first['clip']} window {first['window']}")
        # inputs: what the board received is the Python formula's (each block's CRC-32 checked on the board);
        # decisions: none on this path, the windows go one by one
        paths.append(PathResult("log-mel", len(rows), len(expected), int(same.all(axis=1).sum()), len(rows),
                                None, first))
        # --- from PCM: the board's own front end
        if len(pcm_at):
            pcm_path, pcm_input = _pcm_path(link, prof, wavs, pcm_at, rows, names, expected, truth, truth_out, k, failures,
                                             log)
            paths.append(pcm_path)
            first_input = pcm_input if first_input is None else first_input
        wire_seconds = time.perf_counter() - wire0
        wire_bytes = link.total_sent + link.total_received
        prof = link.profile()  # again: its stack high-water mark now covers the run
    if first_input is not None:  # the first difference of either path, localized on the emulated build
        i = next(n for n, p in enumerate(paths) if p.first_difference)
        where = localize_on_emulator(b.name, export_dir, model, first_input, arena=arena, log=log)
        paths[i] = dataclasses.replace(paths[i], first_difference={**paths[i].first_difference, **where})
    measured = [c for c in cycles if c is not None]
    cpi = float(np.mean(measured)) if measured and prof.cycles_measured else None
    ms = 1000.0 * cpi / prof.clock_hz if cpi is not None else None
    op_rows = tuple({"op": op, "cycles": cyc, "ms": 1000.0 * cyc / prof.clock_hz} for op, cyc in ops
                    if cyc is not None and prof.cycles_measured)
    est, note = _estimate(export_dir, b.name, exp.tflite_sha256)
    err = 100.0 * (ms - est) / est if (ms is not None and est) else None
    report = BoardRunReport(
        export_dir=str(export_dir.resolve()), tflite_sha256=exp.tflite_sha256, board=b.name, port=port, profile=prof,
        clips=len(rows), paths=tuple(paths), cycles_per_inference=cpi, ms_per_inference=ms, operators=op_rows,
        estimated_ms_per_inference=est, estimate_note=note, estimate_error_percent=err, wire_bytes=wire_bytes,
        wire_seconds=round(wire_seconds, 2), seconds=round(time.perf_counter() - t0, 1), failures=tuple(failures),
        **artifacts.provenance())
    with artifacts.staging_dir(out_dir, stage=STAGE, inputs=inputs) as tmp:
        records.write(tmp / "board_report.json", report)
        artifacts.atomic_write_text(tmp / "board_report.md", format_board_report(report))
    return report


def _pcm_positions(table, rows: np.ndarray, pcm_clips: int | str) -> np.ndarray:
    """Positions in ``rows`` of the clips that also go through the board's front end: a stratified sample
    of ``pcm_clips`` of them (every one for "all" or at least as many)."""
    if pcm_clips == "all" or int(pcm_clips) >= len(rows):
        return np.arange(len(rows))
    if int(pcm_clips) <= 0:
        return np.arange(0)
    picked = stratified_sample(table.iloc[rows].reset_index(drop=True), size=int(pcm_clips), seed=0)
    return np.sort(picked.index.to_numpy())


def _pcm_path(link: BoardLink, prof: BoardProfile, wavs, pcm_at, rows, names, expected, truth, truth_out, k,
              failures, log) -> tuple[PathResult, np.ndarray | None]:
    """Every sampled clip's PCM through the board's front end (see the module's docstring); with the int8
    input of the first differing inference, if any."""
    identical = inputs_same = decisions_same = 0
    first, first_input = None, None
    for j, c in enumerate(pcm_at):
        name = names[c]
        link.context = f"clip {name} (evaluate index {rows[c]}), from PCM"
        pcm, width = wav_pcm(wavs[j])
        run = link.clip_from_pcm(pcm, bytes_per_sample=width, chunk_bytes=prof.pcm_max_bytes, windows=k,
                                 output_bytes=prof.output_bytes)
        want_crc = [zlib.crc32(expected[c * k + w].tobytes()) for w in range(k)]
        own = [w.input_crc32 == want_crc[w.index] for w in run.windows]
        outs = np.stack([np.frombuffer(w.output, np.int8) for w in run.windows])
        truth_here = truth_out[c * k:(c + 1) * k].copy()
        inputs_here = expected[c * k:(c + 1) * k].copy()  # replaced by the board's own where they differ
        if not all(own):  # the front end computed other inputs: get them, and TFLM Python's outputs on them
            link.context = f"clip {name} (evaluate index {rows[c]}), from PCM with inputs dumped"
            again = link.clip_from_pcm(pcm, bytes_per_sample=width, chunk_bytes=prof.pcm_max_bytes, windows=k,
                                       output_bytes=prof.output_bytes, dump=True)
            board_inputs = np.stack([np.frombuffer(w.input, np.int8) for w in again.windows])
            if [zlib.crc32(w.input) for w in again.windows] != [w.input_crc32 for w in again.windows]:
                raise BoardError(f"{link.context}: a dumped input does not match the CRC-32 the board sent with it")
            differ = [w for w in range(k) if not own[w]]
            truth_here[differ] = truth.run(board_inputs[differ])
            inputs_here[differ] = board_inputs[differ]
        else:
            inputs_same += 1
        same = (outs == truth_here).all(axis=1)
        identical += bool(same.all())
        decisions_same += int(run.decision == int(clip_decisions(accumulate_windows(outs, windows_per_clip=k))[0]))
        if not same.all() and first is None:
            w = int(np.flatnonzero(~same)[0])
            first = _difference("pcm", name, int(rows[c]), w, outs[w], truth_here[w])
            first_input = inputs_here[w]
        log(f"board: PCM {j + 1}/{len(pcm_at)} {name}")
    n = len(pcm_at)
    if identical < n:
        failures.append(f"from PCM: int8 outputs differ from TFLM Python (on the board's own inputs) on "
                        f"{n - identical} of {n} clip(s)")
    if decisions_same < n:
        failures.append(f"from PCM: the board's clip decision differs from the Python accumulation of its window "
                        f"outputs on {n - decisions_same} clip(s)")
    return PathResult("pcm", n, n * k, identical, inputs_same, decisions_same, first), first_input


def format_board_report(r: BoardRunReport) -> str:
    p = r.profile
    lines = [f"# {r.board}: {Path(r.export_dir).name}/model.tflite on the board", "",
             f"Board: {p.chip} at {r.port}, {p.clock_hz / 1e6:g} MHz running ({p.clock_note}; the board set out for "
             f"{p.target_clock_hz / 1e6:g} MHz). Truth: {r.truth}. Result: **{'PASSED' if r.passed else 'FAILED'}**", "",
             f"Tensor arena {p.arena_used:,d} of {p.arena_bytes:,d} bytes used; deepest stack of the run "
             f"{'not reported' if p.stack_used is None else f'{p.stack_used:,d} bytes'} (painted stack, measured on the "
             "board)", ""]
    lines += [f"- FAILURE: {f}" for f in r.failures]
    lines += ["| path | clips | inferences | outputs identical (clips) | inputs identical (clips) | decisions identical |",
              "|---|---|---|---|---|---|"]
    for x in r.paths:
        decisions = "-" if x.decisions_identical is None else x.decisions_identical
        lines.append(f"| {x.path} | {x.clips} | {x.inferences} | {x.identical} | {x.inputs_identical} | {decisions} |")
    for x in r.paths:
        if x.first_difference:
            d = x.first_difference
            op = (f"first differing operator on {d['localized_on']}: {d.get('op_index')} {d['op']}" if d.get("op")
                  else d.get("explanation", ""))
            lines += ["", f"First difference ({x.path}): clip {d['clip']} window {d['window']}: "
                          f"{d['elements_differing']} element(s), up to {d['max_abs_diff_lsb']} LSB; {op}"]
    measured = "measured" if r.ms_per_inference is not None else NOT_MEASURED
    per_inference = (f"{r.ms_per_inference:.3f} ms ({r.cycles_per_inference:,.0f} cycles, DWT CYCCNT)"
                     if r.ms_per_inference is not None else
                     f"{NOT_MEASURED} (the DWT cycle counter does not advance on this board: an emulator has no "
                     "cycle timing)")
    lines += ["", "## Time", "",
              f"- per inference on the board: {per_inference}",
              f"- estimate: {f'{r.estimated_ms_per_inference:.3f} ms' if r.estimated_ms_per_inference is not None else '-'} "
              f"({r.estimate_note})"
              + (f"; measured is {r.estimate_error_percent:+.1f} % from it" if r.estimate_error_percent is not None else ""),
              f"- per operator: {measured}"]
    if r.operators:
        lines += ["", "| operator | cycles | ms |", "|---|---|---|"]
        lines += [f"| {o['op']} | {o['cycles']:,d} | {o['ms']:.3f} |" for o in r.operators]
    lines += ["", f"Wire: {r.wire_bytes:,d} bytes in {r.wire_seconds:.1f} s "
                  f"({r.wire_bytes / max(r.wire_seconds, 1e-9) / 1000:.1f} kB/s, commands and answers included; "
                  f"{r.profile.baud} baud configured on the board)", ""]
    return "\n".join(lines)
