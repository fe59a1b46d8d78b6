"""Every training parameter in one frozen record (:class:`TrainConfig`), saved in a run's
``config.json``; its defaults are the recipe of the README's figures."""
from __future__ import annotations

import dataclasses
import math

from keras_asc.windows import WindowPlan, window_plan

LOSSES = ("ce", "focal")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Every training parameter; frozen and saved in ``RUN_DIR/config.json``."""

    model: str = "resnet11"
    model_overrides: tuple[tuple[str, float], ...] = ()  # e.g. (("width", 0.25),)
    # the recipe of every figure in the README (the demo's): `asc train`, the demo and the grid
    # take these (asc_cli.stages.PipelineConfig is composed of this record)
    epochs: int = 40
    batch_size: int = 32
    learning_rate: float = 2e-3
    min_learning_rate: float = 1e-5  # cosine decay from learning_rate to this over all epochs
    loss: str = "ce"  # "ce" or "focal" (Table 5)
    focal_gamma: float = 2.0
    mixup_alpha: float = 0.0  # 0 disables mixup
    device_aug: float = 0.0  # max per-band EQ deviation in normalized units; 0 disables
    seed: int = 0
    # frames per inference; None: the whole clip. Training draws random crops of this many frames,
    # ceil(clip frames / window_frames) of each clip per epoch, so that an epoch covers as many
    # frames as a whole-clip epoch and the same recipe (epochs, learning-rate schedule) applies.
    window_frames: int | None = None
    window_hop: int | None = None  # hop between a clip's windows at evaluation; None: window_frames
    # knowledge distillation (keras_asc.distill): finished runs whose mean logits teach; () disables
    teachers: tuple[str, ...] = ()  # absolute run folders
    kd_weight: float = 0.5  # A: loss = (1 - A) * label loss + A * T^2 * KL(teacher || student)
    kd_temperature: float = 2.0  # T
    # Freq-MixStyle (keras_asc.augment): probability per batch (0 disables) and the Beta's alpha
    freq_mixstyle_p: float = 0.0
    freq_mixstyle_alpha: float = 0.3
    # device impulse responses (keras_asc.augment): a folder of WAVs, the probability per clip and
    # epoch of training on a DIR-convolved copy instead of the clip (0 disables), copies per clip
    dir_folder: str | None = None  # absolute folder
    dir_p: float = 0.0
    dir_copies: int = 4

    def recipe_text(self) -> str:
        """Distillation and augmentation in a few words ("" when all three are off)."""
        parts = []
        if self.teachers:
            parts.append(f"distillation from {len(self.teachers)} teacher(s) (weight {self.kd_weight:g}, "
                         f"temperature {self.kd_temperature:g})")
        if self.freq_mixstyle_p > 0:
            parts.append(f"Freq-MixStyle p {self.freq_mixstyle_p:g}, alpha {self.freq_mixstyle_alpha:g}")
        if self.dir_p > 0:
            parts.append(f"device impulse responses p {self.dir_p:g} ({self.dir_copies} copies)")
        return "; ".join(parts)

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ValueError(f"invalid training configuration: {self}")
        if (self.window_frames is not None and self.window_frames < 1) or (self.window_hop is not None and (
                self.window_hop < 1 or self.window_frames is None)):
            raise ValueError(f"invalid windows (frames >= 1, a hop only with frames): {self}")
        if not (0.0 <= self.kd_weight <= 1.0 and self.kd_temperature > 0 and 0.0 <= self.freq_mixstyle_p <= 1.0
                and self.freq_mixstyle_alpha > 0 and 0.0 <= self.dir_p <= 1.0 and self.dir_copies >= 1
                and all(math.isfinite(v) for v in (self.kd_weight, self.kd_temperature, self.freq_mixstyle_alpha))):
            raise ValueError(f"invalid distillation/augmentation values (weight and probabilities in [0, 1], "
                             f"temperature, alpha > 0, copies >= 1): {self}")
        if self.dir_p > 0 and not self.dir_folder:
            raise ValueError(f"dir_p > 0 needs dir_folder: {self}")

    def input_frames(self, clip_frames: int) -> int:
        """Frames the model takes per inference."""
        if self.window_frames is not None and self.window_frames > clip_frames:
            raise ValueError(f"--window-frames {self.window_frames} is longer than the clip's {clip_frames} frames")
        return self.window_frames or clip_frames

    def windows(self, clip_frames: int) -> WindowPlan | None:
        """How a clip of ``clip_frames`` frames is cut into inferences (None: the whole clip)."""
        return window_plan(frames=self.window_frames, hop=self.window_hop, clip_frames=clip_frames)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["model_overrides"] = dict(self.model_overrides)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = {f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d}
        d["model_overrides"] = tuple(sorted(dict(d.get("model_overrides", {})).items()))
        d["teachers"] = tuple(d.get("teachers", ()))
        return cls(**d)

    def learning_rate_at(self, epoch: int) -> float:
        """Cosine decay per epoch; a pure function of the epoch, so resuming is exact."""
        frac = epoch / max(1, self.epochs - 1)
        return self.min_learning_rate + 0.5 * (self.learning_rate - self.min_learning_rate) * (1 + math.cos(math.pi * frac))
