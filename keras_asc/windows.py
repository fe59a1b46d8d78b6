"""Windowed inference: the model classifies ``window`` frames at a time; a clip's decision
combines its windows. Defined once, here.

The windows of a clip of ``n_frames`` frames start at ``0, hop, 2*hop, ...`` while they fit;
when the last one stops short of the clip's end, one more window ends exactly at the clip's end,
so every frame is seen. A clip's probabilities are the mean of its windows' probabilities.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np


@dataclasses.dataclass(frozen=True)
class WindowPlan:
    """How a clip is cut into the model's inputs."""

    frames: int  # per window (the model's input frames)
    hop: int
    clip_frames: int
    starts: tuple[int, ...]
    JSON_PROPERTIES: ClassVar[tuple[str, ...]] = ("per_clip",)

    @property
    def per_clip(self) -> int:
        return len(self.starts)


def window_plan(*, frames: int | None, hop: int | None, clip_frames: int) -> WindowPlan | None:
    """The plan of a windowed run (``hop`` None: ``frames``), or None for whole-clip inference."""
    if frames is None:
        return None
    hop = hop or frames
    return WindowPlan(frames, hop, clip_frames, window_starts(n_frames=clip_frames, window=frames, hop=hop))


def window_starts(*, n_frames: int, window: int, hop: int) -> tuple[int, ...]:
    """First frame of each window of a clip."""
    if not 1 <= window <= n_frames or hop < 1:
        raise ValueError(f"a window of {window} frames with hop {hop} does not fit a clip of {n_frames} frames")
    starts = list(range(0, n_frames - window + 1, hop))
    if starts[-1] + window < n_frames:
        starts.append(n_frames - window)
    return tuple(starts)


def split_windows(x: np.ndarray, *, window: int, hop: int) -> np.ndarray:
    """Clips ``(n, n_mels, n_frames, ...)`` -> windows ``(n * k, n_mels, window, ...)``, clip-major
    (clip 0's k windows, then clip 1's, ...), ``k`` = ``len(window_starts(...))``."""
    starts = window_starts(n_frames=x.shape[2], window=window, hop=hop)
    parts = np.stack([x[:, :, s:s + window] for s in starts], axis=1)  # (n, k, mels, window, ...)
    return parts.reshape(-1, *parts.shape[2:])


def combine_windows(window_probs: np.ndarray, *, windows_per_clip: int) -> np.ndarray:
    """Windows' probabilities ``(n * k, classes)`` (clip-major) -> clips' ``(n, classes)``: the mean."""
    p = np.asarray(window_probs, np.float64)
    return p.reshape(-1, windows_per_clip, p.shape[-1]).mean(axis=1)
