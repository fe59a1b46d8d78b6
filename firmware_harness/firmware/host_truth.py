"""The host C++ build of TFLM's reference kernels (the ``host`` target) as ``asc validate``'s every-clip
truth, in place of TFLM's Python runtime (issue #32).

Both run TFLM's reference kernels: the wheel and the pinned sources, two builds of the same code. The
C++ build is about twice as fast per clip (-O3), so it computes the truth on every clip and TFLM's Python
runtime becomes a redundant witness on a sample (:mod:`firmware_harness.validation.planned`). The program
is the one ``asc firmware`` builds for the ``host`` target, from the same sources and flags
(``build_inputs_sha256``), so ``asc firmware`` can take its outputs for that target's log-mel run.
"""
from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from firmware_harness.builds import program as fw_program
from firmware_harness.builds import third_party
from firmware_harness.builds.program import build_inputs_sha256
from firmware_harness.builds.targets import get_target
from firmware_harness.builds.third_party import FirmwareError
from firmware_harness.validation.export_validation import header_arena_bytes
from firmware_harness.validation.layers import first_divergence
from firmware_harness.validation.runners import make_runner
from tflite_export.flatbuffer import io_tensors, read_model_shared

#: The target whose build is the truth.
TRUTH_TARGET = "host"


def localize_output_difference(prog: fw_program.Program, model: bytes, x: np.ndarray, *, arena: int,
                               work: Path) -> dict:
    """Run one int8 input ``x`` (the model's input shape, batch 1 included) with every tensor dumped;
    the first operator differing from TFLM Python (:func:`~firmware_harness.validation.layers.first_divergence`)."""
    run = fw_program.run_program(prog, work, int8=x.reshape(1, -1), dump_clip=0)
    dump = fw_program.read_tensor_dump(run.dump)
    truth = make_runner("tflm", model, arena_bytes=arena, preserve=True)
    truth.run(x[None])

    def firmware_tensor(i: int) -> np.ndarray:
        return np.frombuffer(dump[i][1], truth.tensor(i).dtype)

    d = first_divergence(read_model_shared(model), truth.tensor, firmware_tensor, runner=prog.target.name, known={})
    return d.to_dict() if d else {"op": None, "explanation": "outputs differed but no operator output did"}


@dataclasses.dataclass(frozen=True)
class HostReferenceTruth:
    """:class:`~firmware_harness.validation.planned.TruthProgram` of the host target's build."""

    program: fw_program.Program
    model: bytes
    arena: int  # TFLM Python's arena, for the localization
    work: Path
    build_inputs_sha256: str
    name: str = TRUTH_TARGET
    description: str = "TFLM's reference kernels, C++ built for this machine from the pinned sources (host target)"

    def run_logmel(self, logmel: np.ndarray, *, workers: int) -> tuple[np.ndarray, np.ndarray]:
        run = fw_program.run_program_parallel(self.program, self.work / "run", logmel=logmel, workers=workers)
        return run.inputs, run.outputs

    def localize(self, x: np.ndarray) -> dict:
        return localize_output_difference(self.program, self.model, np.asarray(x)[0], arena=self.arena,
                                          work=self.work / "dump")


@contextlib.contextmanager
def host_reference_truth(export_dir: Path, *, model: bytes, arena: int, third_party_dir: Path | None = None,
                         log=print) -> Iterator[HostReferenceTruth | None]:
    """The host build of ``export_dir``'s C sources, in a temporary folder for the context; None (the
    reason logged) when the toolchain or the pinned TFLM archives are missing, the build fails, or the
    build's arena is too small (``asc firmware`` reports those): TFLM Python is then the truth."""
    target = get_target(TRUTH_TARGET)
    missing = target.missing_tools()
    if missing:
        log(f"validate: TFLM Python is the truth on every clip: {', '.join(missing)} not installed (the host C++ "
            "build of TFLM would stand in for it)")
        yield None
        return
    try:
        tp = third_party.locate_third_party(third_party_dir, log=log)
    except FirmwareError as e:
        log(f"validate: TFLM Python is the truth on every clip: {e}")
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="asc-truth-") as tmp:
        try:
            tree = third_party.prepare_tflm_tree(tp, log=log)
            prog = fw_program.build_program(Path(export_dir), target, Path(tmp) / "build", tree=tree, log=log)
            need = fw_program.measure_arena(prog, Path(tmp) / "probe", input_elements=_input_elements(model))
        except FirmwareError as e:  # validation never needed a C++ build: say why, and go on without it
            log(f"validate: TFLM Python is the truth on every clip: the {TRUTH_TARGET} C++ build failed ({e}); "
                "asc firmware --targets host shows the build's error")
            yield None
            return
        if need > header_arena_bytes(Path(export_dir)):
            log(f"validate: TFLM Python is the truth on every clip: the host build needs {need:,d} bytes of arena, "
                "more than kTensorArenaSize (asc firmware reports it)")
            yield None
            return
        log(f"validate: the truth on every clip is the {TRUTH_TARGET} C++ build of TFLM's reference kernels")
        yield HostReferenceTruth(prog, model, arena, Path(tmp), build_inputs_sha256(Path(export_dir), tp,
                                                                                     (TRUTH_TARGET,)))


def _input_elements(model: bytes) -> int:
    (inp,), _ = io_tensors(read_model_shared(model))
    return int(np.prod(inp.shape))
