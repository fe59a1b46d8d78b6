"""``asc firmware --from-audio``: PCM to scene class on the target, against the training features.

The firmware program streams each evaluate clip's WAV through the exported front end
(``model_frontend.cc``: CMSIS-DSP float32 FFT, mel, log, the header's int8 quantization) and runs
the model. The harness then compares, per target:

* the front end's float log-mel with the training features (librosa, float64): dB differences;
* its int8 input with the training features' quantization (:func:`quantize_input`): elements
  differing and by how many steps;
* its int8 outputs with the harness's (TFLM Python on the training features' int8 input):
  identical clips, top-1 agreement, and the accuracy from PCM next to the harness's int8
  accuracy on the same clips;
* and, so that any difference is the front end's and never the model's, its outputs with TFLM
  Python run on the front end's own int8 input: these must be identical on every clip.

The front end takes mono 16/24-bit PCM at the feature sample rate (it neither mixes nor
resamples); other files are refused before anything runs, naming them.
"""
from __future__ import annotations

import concurrent.futures as cf
import dataclasses
from collections import Counter
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np
import soundfile as sf

from firmware_harness.builds import program as fw_program
from firmware_harness.builds.third_party import FirmwareError
from keras_asc import artifacts
from keras_asc.dataset import read_split
from tflite_export.window_combine import accumulate_windows, clip_decisions

#: Gates of ``--from-audio``, defended by the measurements in the README (demo data: 3 of
#: 737,280 int8 input elements differ, by one step, with a largest log-mel difference of 1.4e-4 dB).
MIN_INPUT_IDENTICAL = 0.999  # fraction of int8 input elements equal to the training features'
MIN_TOP1_AGREEMENT = 0.995  # fraction of clips whose top-1 class equals the harness's
PCM_SUBTYPES = ("PCM_16", "PCM_24")


@dataclasses.dataclass(frozen=True)
class ClipDifference:
    """A clip whose front-end int8 input differs from the training features' quantization."""

    clip: str
    elements_differing: int
    max_steps: int
    max_abs_diff_db: float  # largest log-mel difference of the clip
    outputs_identical: bool  # int8 outputs still equal the harness's
    top1_changed: bool


@dataclasses.dataclass(frozen=True)
class FromAudioResult:
    clips: int
    chunk_samples: int
    logmel_max_abs_diff_db: float
    logmel_mean_abs_diff_db: float
    input_elements: int  # over all clips
    input_elements_differing: int
    input_step_counts: dict[str, int]  # |difference| in quantization steps -> elements
    outputs_identical_to_harness: int  # clips
    top1_agreement: int  # clips whose top-1 equals the harness's
    model_bit_exact: int  # clips whose outputs equal TFLM Python on the front end's own input
    accuracy_from_pcm: float
    accuracy_harness_int8: float  # the same clips, from the training features
    differing_clips: tuple[ClipDifference, ...]
    frontend_seconds_per_frame: float  # host: real time; emulated: QEMU emulation time
    frontend_state_bytes: int  # sizeof(FrontEnd): frame + two FFT buffers + FFT instance
    pcm_chunk_bytes: int  # the program's microphone-chunk buffer
    stack_used_bytes: int | None  # Cortex-M: deepest stack of the whole run (front end + inference)
    # host: inferences whose PCM-path int8 input was identical to the log-mel path's, so the same program's
    # output for it was reused instead of a second Invoke (same binary, same input: same output); still
    # compared like every other
    invokes_skipped: int = 0
    JSON_PROPERTIES: ClassVar[tuple[str, ...]] = ("input_identical_fraction", "top1_agreement_fraction")

    @property
    def input_identical_fraction(self) -> float:
        return 1 - self.input_elements_differing / max(self.input_elements, 1)

    @property
    def top1_agreement_fraction(self) -> float:
        return self.top1_agreement / max(self.clips, 1)


def dataset_audio(data_dir: Path, table) -> list[Path]:
    """The WAV files under ``data_dir`` of the cached evaluate ``table``'s rows (same order), each
    checked by content against the sha256 the features were computed from; a file that is missing
    or holds other audio is refused, naming it. The paths the cache recorded are never used: the
    audio streamed is ``--data``'s, and provably the audio of the features it is compared with."""

    data_dir = Path(data_dir)
    here = dict(zip(read_split(data_dir, "evaluate")["filename"], read_split(data_dir, "evaluate")["path"]))
    missing = [f for f in table["filename"] if f not in here]
    if missing:
        raise FirmwareError(f"{data_dir}: its evaluate split has no {missing[0]} ({len(missing)} clip(s) missing), but "
                            "the features compared with come from a dataset that has: --data must be the dataset the "
                            "export was validated on")

    paths = [Path(here[f]) for f in table["filename"]]
    with cf.ThreadPoolExecutor(4) as pool:  # hashlib releases the GIL: the reads and hashes overlap
        hashes = list(pool.map(artifacts.sha256_file, paths))
    for path, want, got in zip(paths, table["sha256"], hashes):
        if got != want:
            raise FirmwareError(
                f"{path}: holds other audio than the file the cached features were computed from (sha256 differs), "
                "so PCM -> class could not be compared with them. Restore the file, or recompute the features of "
                f"{data_dir} (delete its entry under WORK/features/ or use another --work) and run again")
    return paths


def check_audio_files(paths: list[Path], *, sample_rate: int) -> None:
    """Refuse, naming them, files the front end cannot stream (it neither mixes nor resamples)."""
    bad = []
    for p in paths:
        try:
            info = sf.info(str(p))
        except (sf.LibsndfileError, RuntimeError) as e:
            bad.append(f"{p} ({e})")
            continue
        if info.format != "WAV" or info.subtype not in PCM_SUBTYPES or info.channels != 1 or info.samplerate != sample_rate:
            bad.append(f"{p} ({info.format} {info.subtype}, {info.channels} channel(s), {info.samplerate} Hz)")
    if bad:
        more = f" ({len(bad)} clips in all; also {', '.join(bad[1:3])})" if len(bad) > 1 else ""
        raise FirmwareError(
            f"{bad[0]}: cannot go through the device front end, which takes mono 16/24-bit PCM WAV at "
            f"{sample_rate} Hz (it neither mixes channels nor resamples){more}. Convert such files (e.g. "
            f"`sox IN -c 1 -r {sample_rate} -b 24 OUT.wav`) or run `asc firmware` without --from-audio")


def run_from_audio(prog: fw_program.Program, *, table, wav_paths: list[Path], rows: np.ndarray,
                   train_logmel: np.ndarray,
                   expected_inputs: np.ndarray, harness_outputs: np.ndarray, truth_for, work: Path,
                   n_mels: int, windows_per_clip: int, chunk: int | None, name: str, workers: int = 1,
                   known: tuple[np.ndarray, np.ndarray] | None = None,
                   adopt: Callable[[np.ndarray, np.ndarray], None] | None = None, witness_rows: np.ndarray | None = None
                   ) -> tuple[FromAudioResult, list[str], fw_program.AudioRun]:
    """PCM -> class on ``prog`` for evaluate rows ``rows`` (``wav_paths``: the evaluate split's
    files, checked by :func:`dataset_audio`); returns the result, its failures and the program's
    run (what the device produced: int8 inputs and outputs per inference).

    ``train_logmel`` (clips, mels, clip frames) holds the training features of those rows;
    ``expected_inputs`` (inferences, elements) their int8 quantization and ``harness_outputs``
    (inferences, classes) the harness's outputs, per inference: one per clip, or
    ``windows_per_clip`` per clip (clip-major) for a windowed model, whose clip decision is the
    accumulated windows'. ``truth_for(x_int8)`` runs TFLM Python on (n, elements) inputs.

    ``workers``: program processes sharing the clips (host). ``known``: the same program's (inputs,
    outputs) per inference from the log-mel path (host); an inference whose PCM-path input is identical is
    not invoked again (:func:`~firmware_harness.builds.program.run_program_audio`), counted in ``invokes_skipped``.

    ``adopt(x_int8, outputs)``: ``prog`` is the every-clip truth; its outputs on its own inputs outside the
    evaluate rows ``witness_rows`` (the witnesses' sample) are adopted as the truth there, and ``truth_for``
    (TFLM Python) checks the sampled ones."""
    k = windows_per_clip
    run = fw_program.run_program_audio_parallel(prog, work, wav_paths=[wav_paths[r] for r in rows], n_mels=n_mels,
                                                chunk=chunk, workers=workers,
                                                known_inputs=None if known is None else known[0],
                                                known_outputs=None if known is None else known[1])
    db_max, db_sum = np.zeros(len(rows)), 0.0  # per clip, in blocks: no float64 copy of the whole split
    for a in range(0, len(rows), 64):
        d = np.abs(run.logmel[a:a + 64].astype(np.float64) - np.asarray(train_logmel[a:a + 64], np.float64))
        db_max[a:a + 64] = d.reshape(len(d), -1).max(axis=1)
        db_sum += float(d.sum())
    db_mean = db_sum / max(run.logmel.size, 1)
    diff = np.abs(run.inputs.astype(np.int16) - expected_inputs.astype(np.int16))
    infer_in_same = (diff == 0).all(axis=1)
    infer_out_same = (run.outputs == harness_outputs).all(axis=1)
    # the model part must stay bit-exact: inferences with identical inputs share the harness's truth
    infer_exact = infer_out_same.copy()
    if (~infer_in_same).any():
        if adopt is not None:
            sampled = np.isin(np.repeat(rows, k), np.asarray(witness_rows if witness_rows is not None else ()))
            adopt(run.inputs[~infer_in_same & ~sampled], run.outputs[~infer_in_same & ~sampled])
        own = truth_for(run.inputs[~infer_in_same])
        infer_exact[~infer_in_same] = (run.outputs[~infer_in_same] == own).all(axis=1)
    per_clip = lambda v: v.reshape(len(rows), -1).all(axis=1)  # noqa: E731
    in_same, out_same, model_exact = per_clip(infer_in_same), per_clip(infer_out_same), per_clip(infer_exact)
    pcm_sums = accumulate_windows(run.outputs, windows_per_clip=k)
    pcm_class = clip_decisions(pcm_sums)
    harness_class = clip_decisions(accumulate_windows(harness_outputs, windows_per_clip=k))
    top1_same = pcm_class == harness_class
    labels = table["label"].iloc[rows].to_numpy()
    steps = Counter(int(v) for v in diff[diff > 0])
    clip_diff = diff.reshape(len(rows), -1)
    differing = tuple(ClipDifference(
        clip=str(table["filename"].iloc[rows[c]]), elements_differing=int((clip_diff[c] > 0).sum()),
        max_steps=int(clip_diff[c].max()), max_abs_diff_db=float(db_max[c]), outputs_identical=bool(out_same[c]),
        top1_changed=bool(not top1_same[c])) for c in np.flatnonzero(~in_same))
    result = FromAudioResult(
        clips=len(rows), chunk_samples=run.chunk_samples, logmel_max_abs_diff_db=float(db_max.max(initial=0.0)),
        logmel_mean_abs_diff_db=float(db_mean), input_elements=int(diff.size),
        input_elements_differing=int((diff > 0).sum()), input_step_counts={str(v): n for v, n in sorted(steps.items())},
        outputs_identical_to_harness=int(out_same.sum()), top1_agreement=int(top1_same.sum()),
        model_bit_exact=int(model_exact.sum()), accuracy_from_pcm=float(np.mean(pcm_class == labels)),
        accuracy_harness_int8=float(np.mean(harness_class == labels)), differing_clips=differing,
        frontend_seconds_per_frame=run.frontend_seconds / max(run.frontend_frames, 1),
        frontend_state_bytes=run.frontend_state_bytes, pcm_chunk_bytes=run.pcm_chunk_bytes,
        stack_used_bytes=run.stack_used_bytes, invokes_skipped=run.invokes_skipped)
    failures = []
    if k > 1 and not (np.array_equal(run.clip_sums, pcm_sums) and np.array_equal(run.clip_decisions, pcm_class)):
        failures.append(f"{name} --from-audio: the program's ClipAccumulator differs from the Python accumulation "
                        "of its own window outputs")
    if result.model_bit_exact < result.clips:
        bad = np.flatnonzero(~model_exact)
        failures.append(f"{name} --from-audio: the model's int8 outputs differ from TFLM Python on the front end's "
                        f"own input on {len(bad)} clip(s): {[str(table['filename'].iloc[rows[c]]) for c in bad[:3]]} "
                        f"(evaluate indices {[int(rows[c]) for c in bad[:10]]}{' ...' if len(bad) > 10 else ''})")
    if result.input_identical_fraction < MIN_INPUT_IDENTICAL:
        failures.append(f"{name} --from-audio: only {100 * result.input_identical_fraction:.3f} % of int8 input "
                        f"elements equal the training features' (gate {100 * MIN_INPUT_IDENTICAL} %)")
    if result.top1_agreement_fraction < MIN_TOP1_AGREEMENT:
        failures.append(f"{name} --from-audio: top-1 agrees with the harness on {result.top1_agreement}/{result.clips} "
                        f"clips (gate {100 * MIN_TOP1_AGREEMENT} %); see differing_clips")
    return result, failures, run


def format_from_audio(rows: list[tuple[str, bool, FromAudioResult]]) -> list[str]:
    """The ``--from-audio`` section of ``firmware_report.md``; ``rows``: (target, emulated, result)."""
    if not rows:
        return []
    lines = ["", "## PCM to class (--from-audio): the exported front end against the training features", "",
             "| target | clips | chunk | log-mel max / mean abs diff (dB) | int8 input elements identical | "
             "outputs = harness | top-1 = harness | model bit-exact | accuracy PCM / harness | front end per frame |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, emulated, a in rows:
        per = (f"{1000 * a.frontend_seconds_per_frame:.3f} ms (QEMU emulation)" if emulated
               else f"{1e6 * a.frontend_seconds_per_frame:.1f} us (host)")
        lines.append(
            f"| {name} | {a.clips} | {a.chunk_samples} | {a.logmel_max_abs_diff_db:.2e} / {a.logmel_mean_abs_diff_db:.2e} | "
            f"{a.input_elements - a.input_elements_differing:,d} / {a.input_elements:,d} "
            f"({100 * a.input_identical_fraction:.4f} %) | {a.outputs_identical_to_harness}/{a.clips} | "
            f"{a.top1_agreement}/{a.clips} | {a.model_bit_exact}/{a.clips} | "
            f"{100 * a.accuracy_from_pcm:.1f} % / {100 * a.accuracy_harness_int8:.1f} % | {per} |")
    for name, _, a in rows:
        if a.invokes_skipped:
            lines += ["", f"{name}: {a.invokes_skipped:,d} PCM-path inference(s) had an int8 input identical to the log-mel "
                          "path's, so the program wrote its log-mel-path output instead of invoking the same binary on "
                          "the same input again; every one is compared like the others"]
    for name, _, a in rows:
        if a.input_step_counts:
            steps = ", ".join(f"{n:,d} by {s} step(s)" for s, n in a.input_step_counts.items())
            lines += ["", f"{name}: int8 input elements differing: {steps}. Clips with any difference:"]
            lines += [f"- {d.clip}: {d.elements_differing} element(s), up to {d.max_steps} step(s), log-mel up to "
                      f"{d.max_abs_diff_db:.2e} dB; outputs {'identical' if d.outputs_identical else 'differ'}"
                      f"{', top-1 changed' if d.top1_changed else ''}" for d in a.differing_clips]
    a = rows[0][2]
    lines += ["", f"Why they differ: the device computes the window, FFT (CMSIS-DSP arm_rfft_fast_f32), power, mel and "
              "log in float32, training in float64 (librosa); a log-mel value that lies within that rounding of an "
              "int8 rounding boundary lands one step away. Front-end RAM: FrontEnd state "
              f"{a.frontend_state_bytes:,d} B (one frame and two FFT buffers of float32), plus the program's "
              f"microphone chunk buffer {a.pcm_chunk_bytes:,d} B; its flash is the `frontend` (tables, code) and "
              "`frontend_fft` (CMSIS-DSP) parts of each footprint."]
    return lines
