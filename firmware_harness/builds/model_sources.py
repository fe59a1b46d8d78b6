"""The C sources a firmware needs for a bare ``.tflite`` (what an export would have written).

:func:`prepare_model_sources`: ``model_data.cc/.h`` and a ``model_settings.h``
(:func:`tflite_export.c_sources.model_only_settings_header`: the I/O tensors, ``kTensorArenaSize`` =
TFLM Python's measured need plus max(1 KiB, 10 %), ``RegisterModelOps`` for exactly the model's
operators, ``MODEL_NO_FRONTEND``), and ``config.json`` (:class:`GeneratedSources`, with their
sha256). :func:`fit_arena_to_builds` grows the arena to what each target's build needs. Used by
``asc firmware MODEL.tflite`` and ``asc profile MODEL.tflite``.
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from firmware_harness.builds import program as fw_program
from firmware_harness.builds.targets import get_target
from firmware_harness.model_file import (
    ARENA_MARGIN_TEXT,
    GENERATOR,
    PYTHON_NEED,
    SOURCE_FILES,
    IoTensor,
    ModelFile,
    read_model_file,
)
from firmware_harness.model_source import ModelSource
from keras_asc import artifacts, records
from tflite_export import c_sources
from tflite_export.arena import measure_arena, recommended_arena


# ----------------------------------------------------------------------------- C sources
@dataclasses.dataclass(frozen=True)
class GeneratedSources:
    """``config.json`` of a sources folder generated for a .tflite (:func:`prepare_model_sources`)."""

    model: str  # the .tflite it was generated from (absolute path at the time)
    tflite_sha256: str
    flatbuffer_bytes: int
    ops: tuple[str, ...]  # distinct, in first-use order: what RegisterModelOps registers
    input: IoTensor
    output: IoTensor
    arena_needs: dict[str, int]  # measured arena need per interpreter build: TFLM Python, and each firmware build
    arena_bytes: int  # kTensorArenaSize: the largest need plus max(1 KiB, 10 %), rounded up to 16
    arena_report: str  # TFLM's allocation report (Python runtime, reference kernels)
    files_sha256: dict[str, str]  # the generated sources (SOURCE_FILES): compiled as code, never edited
    packages: dict[str, str]
    git_commit: str
    stage: str = "model-sources"


@dataclasses.dataclass(frozen=True)
class PreparedModel:
    """A sources folder :func:`prepare_model_sources` wrote, what
    :func:`firmware_harness.builds.program.build_program` builds for any target."""

    folder: Path  # model_data.cc, model_data.h, model_settings.h, config.json
    model: ModelFile
    sources: GeneratedSources

    @property
    def ops(self) -> tuple[str, ...]:
        return self.sources.ops

    @property
    def arena_bytes(self) -> int:
        """``kTensorArenaSize``: the largest measured need plus the margin."""
        return self.sources.arena_bytes

    @property
    def python_arena_bytes(self) -> int:
        """What TFLM's Python runtime needs (the arena the truth runs in is at least this)."""
        return self.sources.arena_needs[PYTHON_NEED]

    @property
    def input(self) -> IoTensor:
        return self.sources.input

    @property
    def output(self) -> IoTensor:
        return self.sources.output


def _write_sources(folder: Path, model: ModelFile, *, arena_needs: dict[str, int], arena_report: str) -> PreparedModel:
    """Write ``model_data.cc/.h``, ``model_settings.h`` (kTensorArenaSize: the largest of
    ``arena_needs`` plus the margin) and ``config.json`` into ``folder``."""
    need = max(arena_needs.values())
    arena_bytes = recommended_arena(need)
    measured = ", ".join(f"{name} {n:,d}" for name, n in arena_needs.items())
    i, o = model.input, model.output
    artifacts.atomic_write_text(folder / "model_data.h", c_sources.cc_array_header(generator=GENERATOR))
    artifacts.atomic_write_text(folder / "model_data.cc", c_sources.cc_array_source(model.data, generator=GENERATOR))
    artifacts.atomic_write_text(folder / "model_settings.h", c_sources.model_only_settings_header(
        model_name=model.path.name, input_shape=i.shape, input_scale=i.scale, input_zero_point=i.zero_point,
        output_shape=o.shape, output_scale=o.scale, output_zero_point=o.zero_point, ops=model.ops,
        arena_min_bytes=need, arena_bytes=arena_bytes, arena_margin_text=f"{ARENA_MARGIN_TEXT} (measured: {measured})"))
    sources = GeneratedSources(
        model=str(model.path.resolve()), tflite_sha256=model.sha256, flatbuffer_bytes=len(model.data), ops=model.ops,
        input=i, output=o, arena_needs=dict(arena_needs), arena_bytes=arena_bytes, arena_report=arena_report,
        files_sha256={f: artifacts.sha256_file(folder / f) for f in SOURCE_FILES}, **artifacts.provenance())
    records.write(folder / "config.json", sources)
    return PreparedModel(folder=folder, model=model, sources=sources)


def prepare_model_sources(model_path: Path | ModelSource | ModelFile, out_dir: Path, *, log=print) -> PreparedModel:
    """Refuse or read ``model_path`` (:func:`read_model_file`), measure its arena with TFLM's Python
    runtime (in a child process) and write the firmware's C sources and ``config.json`` into
    ``out_dir``, which must be absent or empty (the caller stages it:
    :func:`keras_asc.artifacts.staging_dir`). A firmware build with other kernels may need more
    arena than TFLM Python (CMSIS-NN's scratch buffers: measured 27,300 bytes on Cortex-M55 for
    KWS DS-CNN against Python's 24,272); :func:`fit_arena_to_builds` measures the targets' builds
    and raises ``kTensorArenaSize`` to cover them."""
    model = read_model_file(model_path)
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise artifacts.RefusedOverwrite(f"{out}: exists and is not an empty folder; the generated sources go into a "
                                         "folder of their own. Give an empty or new folder")
    out.mkdir(parents=True, exist_ok=True)
    log(f"firmware: measuring the TFLM tensor arena of {model.path.name}")
    arena = measure_arena(model.path)
    return _write_sources(out, model, arena_needs={PYTHON_NEED: arena.min_bytes}, arena_report=arena.report)


def fit_arena_to_builds(prepared: PreparedModel, targets: tuple[str, ...], *, tree: Path, work: Path,
                        log=print) -> PreparedModel:
    """Build ``prepared`` for each of ``targets`` in ``work`` (scratch, removed), measure the arena
    each build needs (the program's ``--measure-arena``: one inference in a large scratch arena),
    and rewrite ``model_settings.h`` and ``config.json`` so that ``kTensorArenaSize`` is the largest
    need (TFLM Python's or a build's) plus the margin, as ``asc export`` sizes its header from its
    arena probes. Returns the sources as they now are; build the programs after this."""
    needs = dict(prepared.sources.arena_needs)
    for name in targets:
        target = get_target(name)
        prog = fw_program.build_program(prepared.folder, target, Path(work) / name, tree=tree, log=log)
        needs[f"{name} ({target.kernels})"] = fw_program.measure_arena(prog, Path(work) / name / "run",
                                                                        input_elements=prepared.input.elements)
    shutil.rmtree(work, ignore_errors=True)
    if needs == prepared.sources.arena_needs:
        return prepared
    log(f"firmware: arena needs {', '.join(f'{k} {v:,d}' for k, v in needs.items())}")
    return _write_sources(prepared.folder, prepared.model, arena_needs=needs,
                          arena_report=prepared.sources.arena_report)
