"""The one place that knows how the TAU dataset layouts differ (2020 ten-second, 2022 one-second).

Both development sets share their folder and their metadata files (see
``shared/reference/tau2020_mobile_layout.md``)::

    ROOT/meta.csv                             filename, scene_label, identifier, source_label
    ROOT/evaluation_setup/fold1_train.csv     filename, scene_label
    ROOT/evaluation_setup/fold1_evaluate.csv  filename, scene_label
    ROOT/evaluation_setup/fold1_test.csv      filename

They differ in what one file is:

- ``tau2020``: ``audio/<scene>-<city>-<location>-<segment>-<device>.wav``, 10 s clips, DCASE 2021 rules;
- ``tau2022``: ``audio/<scene>-<city>-<location>-<segment>-<part>-<device>.wav``, 1 s clips, DCASE
  2022-2025 rules (2025 by default).

TAU Urban Acoustic Scenes 2022 Mobile is the 2020 recordings cut into ten one-second parts
(``<part>`` 0-9), e.g. ``audio/airport-lisbon-1000-40000-0-a.wav``; ``identifier`` is still
``<city>-<location>``. Only the 2022 layout has the DCASE 2024 training subsets
(:data:`TRAIN_SPLITS`): ``split5.csv`` ... ``split100.csv``, tab-separated with a header
``filename, scene_label`` like ``fold1_train.csv``; nested (every clip of split5 is in split10,
...), a 10-second segment wholly in a subset or not at all, split100 being the whole fold1 train
split (the CPJKU ``dcase2024_task1_baseline`` downloads them into a ``split_setup/`` folder).

The layout is detected from ``meta.csv``'s file names (:func:`detect_layout_of_names`, which
:func:`keras_asc.dataset.dataset_layout` applies to a dataset); names of neither
form, or of both, are a :class:`LayoutError` naming an example and the two forms.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from keras_asc.errors import AscError

#: The DCASE 2024 training subsets: percent of the fold1 train split.
TRAIN_SPLITS: tuple[int, ...] = (5, 10, 25, 50, 100)
#: Folders (relative to the dataset root, in search order) where ``--train-split N`` looks for
#: ``splitN.csv``: the baseline's download folder, the official setup folder, the root.
SPLIT_FOLDERS: tuple[str, ...] = ("split_setup", "evaluation_setup", ".")


class DatasetError(AscError, ValueError):
    """The dataset folder is not a usable TAU layout; the message says how to fix it.
    (Defined here, re-exported by :mod:`keras_asc.dataset`, so layout errors are dataset errors.)"""


class LayoutError(DatasetError):
    """The dataset is in no known layout, or a train split does not fit it; the message says why."""


@dataclasses.dataclass(frozen=True)
class Layout:
    """What differs between the TAU layouts; everything else is shared."""

    name: str  # "tau2020" or "tau2022"
    title: str
    clip_seconds: float  # length of one audio file
    name_pattern: re.Pattern  # groups: scene, city, location, segment, [part,] device
    name_example: str
    parts_per_segment: int  # one-second parts a 10 s recording segment is cut into (1: not cut)
    has_train_splits: bool  # the DCASE 2024 split5..split100 files exist for it
    default_dcase_year: int  # the complexity rules of the challenge that used this layout

    def filename(self, *, scene: str, city: str, location: int, segment: int, device: str, part: int = 0) -> str:
        """The ``audio/...wav`` name of one clip in this layout."""
        if self.parts_per_segment == 1:
            return f"audio/{scene}-{city}-{location}-{segment}-{device}.wav"
        return f"audio/{scene}-{city}-{location}-{segment}-{part}-{device}.wav"

    def segment_of(self, filename: str) -> str:
        """The recording segment a clip comes from, ``<scene>-<city>-<location>-<segment>``:
        the unit DCASE keeps whole in a split. Raises :class:`LayoutError` for a foreign name."""
        m = self.name_pattern.match(filename)
        if m is None:
            raise LayoutError(f"{filename!r} is not a {self.title} file name (like {self.name_example})")
        return "-".join(m.group("scene", "city", "location", "segment"))


_HEAD = r"^audio/(?P<scene>[a-z_]+)-(?P<city>[a-z]+)-(?P<location>\d+)-(?P<segment>\d+)"
LAYOUTS: dict[str, Layout] = {
    "tau2020": Layout(
        name="tau2020", title="TAU Urban Acoustic Scenes 2020 Mobile (10 s clips)", clip_seconds=10.0,
        name_pattern=re.compile(_HEAD + r"-(?P<device>[a-z0-9]+)\.wav$"),
        name_example="audio/airport-lisbon-1000-40000-a.wav", parts_per_segment=1, has_train_splits=False,
        default_dcase_year=2021),
    "tau2022": Layout(
        name="tau2022", title="TAU Urban Acoustic Scenes 2022 Mobile (1 s clips)", clip_seconds=1.0,
        name_pattern=re.compile(_HEAD + r"-(?P<part>\d)-(?P<device>[a-z0-9]+)\.wav$"),
        name_example="audio/airport-lisbon-1000-40000-0-a.wav", parts_per_segment=10, has_train_splits=True,
        default_dcase_year=2025),
}


def layout_for_clip_seconds(clip_seconds: float) -> Layout:
    """The layout a generated dataset of ``clip_seconds`` clips is written in: one-second clips
    are named and listed like TAU 2022, every other length like TAU 2020."""
    return LAYOUTS["tau2022"] if float(clip_seconds) == LAYOUTS["tau2022"].clip_seconds else LAYOUTS["tau2020"]


def detect_layout_of_names(filenames, *, source: Path) -> Layout:
    """The layout every name of ``filenames`` (``meta.csv``'s column, ``source``) follows."""
    names = list(filenames)
    matches = {k: sum(bool(lay.name_pattern.match(f)) for f in names) for k, lay in LAYOUTS.items()}
    for key, n in matches.items():
        if names and n == len(names):
            return LAYOUTS[key]
    forms = "; ".join(f"{lay.title}: {lay.name_example}" for lay in LAYOUTS.values())
    if not names:
        raise LayoutError(f"{source}: lists no clips, so its layout cannot be told. Restore it from the dataset")
    best = max(matches, key=matches.get)
    odd = next(f for f in names if not LAYOUTS[best].name_pattern.match(f))
    raise LayoutError(
        f"{source}: the file names follow no single known layout ({', '.join(f'{n} of {len(names)} like {k}' for k, n in matches.items())}); "
        f"e.g. {odd!r}. Every name must have one form: {forms}. Use the dataset's own meta.csv, "
        "or regenerate it with `asc make-dataset`")


def resolve_train_split(root: Path, train_split: str | int, layout: Layout) -> Path:
    """The file of ``--train-split``: a DCASE 2024 percentage (``5``, ``10``, ``25``, ``50``,
    ``100``: ``splitN.csv`` looked up in :data:`SPLIT_FOLDERS`) or a path to such a file."""
    text = str(train_split).strip()
    if not layout.has_train_splits:
        raise LayoutError(
            f"--train-split {text}: {Path(root)} is in the {layout.title} layout, and the DCASE 2024 training "
            "subsets list TAU 2022 one-second clips. Use the TAU Urban Acoustic Scenes 2022 Mobile development set "
            "(or `asc make-dataset --clip-seconds 1`), or leave out --train-split to train on fold1_train.csv")
    if text.isdigit():
        if int(text) not in TRAIN_SPLITS:
            raise LayoutError(f"--train-split {text}: DCASE 2024 has no {text} % subset; choose one of "
                              f"{', '.join(map(str, TRAIN_SPLITS))} or give the path of a split file")
        tried = [(Path(root) / d / f"split{int(text)}.csv").resolve() for d in SPLIT_FOLDERS]
        for path in tried:
            if path.is_file():
                return path
        raise LayoutError(
            f"--train-split {text}: split{int(text)}.csv not found (looked for {', '.join(map(str, tried))}). "
            "Download the DCASE 2024 split files (CPJKU/dcase2024_task1_baseline, release 'files') into "
            f"{Path(root) / SPLIT_FOLDERS[0]}, or give the file's path")
    path = Path(text)
    if not path.is_file():
        raise LayoutError(f"--train-split {text}: neither one of {', '.join(map(str, TRAIN_SPLITS))} nor an "
                          "existing split file. Give a percentage or the path of a splitN.csv")
    return path.resolve()
