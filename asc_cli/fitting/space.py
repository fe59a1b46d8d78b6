"""``asc fit``'s search space: the typed record of what may vary (:class:`SearchSpace`), one point of
it (:class:`Candidate`), the deterministic order in which the search visits it
(:func:`candidate_sequence`), and the one place a candidate becomes a grid cell's configuration
(:func:`trial_config`).

The order comes from SciPy's scrambled Sobol sequence (``scipy.stats.qmc.Sobol``, seeded): a
quasi-random sampler that covers every dimension evenly from the first points on, and is a pure
function of the space and the seed. It runs on the driver, before any trial, so the local engine
and the Ray engine train the very same candidates in the same order (see docs/fit.md).
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json

from asc_cli.stages import PipelineConfig

#: Quantization of a candidate: post-training (PTQ), quantize-aware fine-tuning (QAT) or 4-bit LUT
#: weights after clustering (``asc export --compress``).
QUANTIZATIONS = ("ptq", "qat", "lut4")


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """What ``asc fit`` may choose, one tuple of values per dimension (each written in the report).
    A window of None is whole-clip inference; a hop of None is the window (no overlap). A new
    dimension is a field here, a value of :class:`Candidate` and a line of :func:`trial_config`."""

    models: tuple[str, ...] = ("resnet11",)
    widths: tuple[float, ...] = (0.125, 0.25, 0.5)
    windows: tuple[int | None, ...] = (None, 64)
    hops: tuple[int | None, ...] = (None,)
    frames_per_second: tuple[int, ...] = (28, 43)
    mels: tuple[int, ...] = (64, 128)
    quantizations: tuple[str, ...] = ("ptq", "qat")

    def dimensions(self) -> tuple[tuple[str, tuple], ...]:
        """``(field name, values)`` of every dimension, in the record's order."""
        return tuple((f.name, getattr(self, f.name)) for f in dataclasses.fields(self))

    @property
    def size(self) -> int:
        n = 1
        for _, values in self.dimensions():
            n *= len(values)
        return n


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One point of the space: an architecture, its input features and its quantization."""

    model: str
    width: float
    window_frames: int | None
    window_hop: int | None
    frames_per_second: int
    n_mels: int
    quantization: str

    @property
    def name(self) -> str:
        window = "clip" if self.window_frames is None else f"w{self.window_frames}" + (
            f"h{self.window_hop}" if self.window_hop else "")
        return (f"{self.model}_width{self.width:g}_{self.frames_per_second}fps_{self.n_mels}mel_{window}_"
                f"{self.quantization}")

    def architecture(self, *, frames_per_inference: int, overrides: tuple[tuple[str, float], ...] = ()) -> dict:
        """What the untrained model's flatbuffer depends on (its feasibility is cached by this):
        the network, its width and the base's other ``--model-arg`` overrides, its input (mel bands x
        frames per inference) and the graph kind (PTQ and QAT export the same int8 graph; LUT weights
        add decode operators)."""
        extra = sorted([k, float(v)] for k, v in overrides if k != "width")
        return {"model": self.model, "width": self.width, "input": [self.n_mels, frames_per_inference],
                "graph": "lut4" if self.quantization == "lut4" else "int8", **({"overrides": extra} if extra else {})}


def architecture_hash(architecture: dict, *, mcu: str) -> str:
    """A short hash of ``architecture`` on microcontroller ``mcu``: the feasibility cache's key."""
    text = json.dumps({**architecture, "mcu": mcu}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _candidate_at(space: SearchSpace, index: tuple[int, ...]) -> Candidate:
    values = [vals[i] for (_, vals), i in zip(space.dimensions(), index)]
    model, width, window, hop, fps, mels, quant = values
    return Candidate(model=model, width=width, window_frames=window, window_hop=None if window is None else hop,
                     frames_per_second=fps, n_mels=mels, quantization=quant)


def candidate_sequence(space: SearchSpace, *, seed: int) -> list[Candidate]:
    """Every distinct candidate of ``space``, in the order the search visits them: the points of a
    scrambled Sobol sequence seeded with ``seed`` (each coordinate picks one value of its
    dimension), duplicates dropped, then whatever the sequence did not reach in the space's own
    order. The same space and seed give the same list, on any machine."""
    from scipy.stats import qmc  # heavy: SciPy's import takes about a second

    sizes = [len(values) for _, values in space.dimensions()]
    sampler = qmc.Sobol(d=len(sizes), scramble=True, rng=seed)
    points = sampler.random(2 ** max(4, (4 * space.size - 1).bit_length()))  # a power of 2 keeps Sobol balanced
    seen: dict[Candidate, None] = {}
    for point in points:
        index = tuple(min(int(u * n), n - 1) for u, n in zip(point, sizes))
        seen.setdefault(_candidate_at(space, index), None)
    for index in itertools.product(*(range(n) for n in sizes)):
        seen.setdefault(_candidate_at(space, index), None)
    return [c for c in seen if c.window_hop is None or (c.window_frames is not None and c.window_hop <= c.window_frames)]


def trial_config(candidate: Candidate, *, base: PipelineConfig) -> PipelineConfig:
    """The grid cell that trains ``candidate``: ``base`` (the recipe, epochs, seed, budget, ...)
    with the candidate's model, width, features and windows. Quantization is not part of the cell:
    candidates that differ only in it share one trained run (their exports differ)."""
    overrides = tuple(sorted({**dict(base.train.model_overrides), "width": float(candidate.width)}.items()))
    train = dataclasses.replace(base.train, model=candidate.model, model_overrides=overrides,
                                window_frames=candidate.window_frames, window_hop=candidate.window_hop)
    features = dataclasses.replace(base.features, frames_per_second=candidate.frames_per_second,
                                   n_mels=candidate.n_mels)
    return dataclasses.replace(base, train=train, features=features)
