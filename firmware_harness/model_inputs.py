"""The int8 inputs of a run of any .tflite (``--inputs X.npy`` or ``--random N``), and what the reports say of them.

:func:`load_inputs` reads an ``--inputs`` file (a ``.npy``, or an ``.npz`` of one array), refusing
by :class:`InputsFileError`, naming the file, one that is missing, not a regular file (a FIFO is
never opened), unreadable, or not int8 of the model's input shape; or draws ``N`` seeded random
int8 rows. :func:`describe_inputs` is the reports' record of them (:class:`InputsUsed`).
:func:`start_model_stage` is how ``asc validate`` and ``asc firmware`` on any model begin.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from firmware_harness.model_file import DEFAULT_RANDOM_INPUTS, ModelFile, files_read_by_stage, read_model_file
from firmware_harness.model_source import ModelSource, not_a_regular_file, out_dir_beside
from keras_asc import artifacts
from keras_asc.errors import AscError


class InputsFileError(AscError, ValueError):
    """The ``--inputs`` file is missing or unreadable, or its dtype or shape is not the model's."""


@dataclasses.dataclass(frozen=True)
class InputsUsed:
    """Which int8 inputs a run used."""

    kind: str  # "random" or "file"
    count: int
    seed: int | None  # random
    path: str | None  # file
    sha256: str  # of the inputs' bytes, (count, input elements) int8

    def describe(self) -> str:
        if self.kind == "random":
            return f"{self.count} seeded random int8 inputs (uniform over -128..127, seed {self.seed})"
        return f"{self.count} int8 inputs from {self.path}"


def load_inputs(model: ModelFile, *, inputs_path: Path | None = None,
                random_count: int | None = None, seed: int = 0) -> np.ndarray:
    """The int8 inputs of a run: (n, input elements) int8, one row per inference.

    ``model``: its ``input`` tensor (shape, scale, zero point) and file name the expected inputs.
    Exactly one of ``inputs_path`` (a ``.npy``, or an ``.npz`` of one array, of int8, shape
    (n, *input shape) or, for a batch-1
    model, (n, *input shape without the batch dimension); :class:`InputsFileError` naming the file
    and the expected shape otherwise) and ``random_count`` (n seeded random int8 values, uniform
    over -128..127, from ``numpy.random.default_rng(seed)``)."""
    tensor = model.input
    file = model.path
    if (inputs_path is None) == (random_count is None):
        raise ValueError("give exactly one of inputs_path and random_count")
    if random_count is not None:
        if random_count < 1:
            raise ValueError(f"random_count must be at least 1, got {random_count}")
        return np.random.default_rng(seed).integers(-128, 128, size=(random_count, tensor.elements), dtype=np.int8)
    path = Path(inputs_path)
    shape = tensor.shape
    expected = f"(N, {', '.join(map(str, shape))}) or (N, {', '.join(map(str, shape[1:]))})"
    reason = not_a_regular_file(path) or ("is a folder" if path.is_dir() else None)
    if reason is not None or not path.is_file():
        raise InputsFileError(f"{path}: {reason or 'no such file'}; --inputs takes a .npy file of int8 inputs of shape "
                              f"{expected}, one row per inference")
    x = _read_inputs_array(path, expected=expected)
    if x.dtype != np.int8:
        raise InputsFileError(
            f"{path}: dtype {x.dtype}, but the model's input tensor '{tensor.name}' is int8: quantize the inputs "
            f"with its scale {tensor.scale:g} and zero point {tensor.zero_point} (q = round(x / scale) + zero_point, "
            f"clipped to -128..127) and save them as int8, shape {expected}")
    ok = (x.ndim == len(shape) + 1 and tuple(x.shape[1:]) == shape) or (
        x.ndim == len(shape) and tuple(x.shape[1:]) == shape[1:])
    if not ok or len(x) == 0:
        raise InputsFileError(
            f"{path}: shape {tuple(x.shape)}, but the input tensor '{tensor.name}' of {file.name} has shape {shape}: "
            f"--inputs takes one input per row, shape {expected}, N at least 1")
    return np.ascontiguousarray(x.reshape(len(x), -1))


def _read_inputs_array(path: Path, *, expected: str) -> np.ndarray:
    """The array of an ``--inputs`` file: a ``.npy`` (numpy.save), or an ``.npz`` (numpy.savez) holding
    exactly one array; :class:`InputsFileError` naming the file otherwise."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise InputsFileError(f"{path}: not a readable .npy file ({e}); --inputs takes a .npy file written by "
                              f"numpy.save of int8 inputs of shape {expected}") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        return loaded
    with loaded:
        names = list(loaded.files)
        if len(names) != 1:
            raise InputsFileError(
                f"{path}: an .npz archive of {len(names)} arrays {names}; --inputs takes one array of int8 inputs of "
                f"shape {expected}: save it alone (numpy.save to a .npy, or numpy.savez with one array)")
        try:
            return loaded[names[0]]
        except (ValueError, OSError, EOFError) as e:
            raise InputsFileError(f"{path}: array {names[0]!r} of the .npz archive cannot be read ({e}); save the "
                                  f"int8 inputs again with numpy.save, shape {expected}") from None


def describe_inputs(x: np.ndarray, *, inputs_path: Path | None, random_count: int | None, seed: int) -> InputsUsed:
    """What :func:`load_inputs` gave, for the reports; ``x`` (n, input elements) int8."""
    digest = artifacts.sha256_bytes(np.ascontiguousarray(x, np.int8).tobytes())
    if random_count is not None:
        return InputsUsed(kind="random", count=len(x), seed=seed, path=None, sha256=digest)
    return InputsUsed(kind="file", count=len(x), seed=None, path=str(Path(inputs_path).resolve()), sha256=digest)


@dataclasses.dataclass(frozen=True)
class ModelStageStart:
    """Where a stage on any int8 .tflite starts (:func:`start_model_stage`)."""

    model: ModelFile
    out: Path  # the stage's output folder
    reads: tuple[Path, ...]  # the files the stage reads: its outputs never replace them
    random_count: int | None  # random inputs to draw; None: the inputs file's


def start_model_stage(model_path: Path | ModelSource, *, inputs_path: Path | None, random_count: int | None,
                      out_dir: Path | None, stage: str, command: str) -> ModelStageStart:
    """The model read and checked, ``random_count`` :data:`DEFAULT_RANDOM_INPUTS` when neither an inputs
    file nor a count is given, and the output folder (``out_dir``, default
    :func:`~firmware_harness.model_source.out_dir_beside` for ``command``) refused before any work when
    ``stage`` may not replace it."""
    model = read_model_file(model_path)
    if inputs_path is None and random_count is None:
        random_count = DEFAULT_RANDOM_INPUTS
    out = Path(out_dir) if out_dir is not None else out_dir_beside(model.path, command)
    reads = files_read_by_stage(model, inputs_path)
    artifacts.check_replaceable(out, stage=stage, inputs=reads)
    return ModelStageStart(model=model, out=out, reads=reads, random_count=random_count)
