"""The MLPerf Tiny board latencies of ``../shared/reference/mlperf_tiny/README.md`` as typed rows
(:func:`published_rows`: every table row of the README, read from its text, never copied here),
and how each row compares with a profile (:func:`comparison`): which microcontroller row of
``tflite_export/mcu_targets.py``, which firmware target, the whole Invoke (TFLM) or the operators'
sum (microTVM: CMSIS-NN's kernels called without TFLM's interpreter), and the pass criterion.
No heavy imports: ``benchmarks/bench_latency.py`` and the tests use it.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

#: The reference models of the README, by the column prefix of its tables.
MODELS = {"IC": "ic_resnet8_int8.tflite", "KWS": "kws_dscnn_int8.tflite"}

#: Board column -> (tflite_export.mcu_targets row, firmware target whose counts it prices).
BOARDS = {"NUCLEO-L4R5ZI": ("nucleo-l4r5zi", "cortex-m4"), "EK-RA6M4": ("ek-ra6m4", "cortex-m33"),
          "nRF5340 DK": ("nrf5340", "cortex-m33"), "EK-RA8D1": ("ek-ra8d1", "cortex-m85")}

#: MLPerf Tiny round -> the year of the software the submission ran (the README's rows).
ROUND_YEAR = {"v0.5": 2020, "v0.7": 2022, "v1.0": 2022, "v1.1": 2023, "v1.2": 2024}

#: The pass criteria of issue 31: rows of 2022-or-newer software within 15 %, the Cortex-M85 within
#: 25 %; the 2020 row has none (what is left after the memory model is reported instead).
TOLERANCE = 0.15
M85_TOLERANCE = 0.25
FIRST_YEAR_WITH_CRITERION = 2022

INVOKE = "invoke"  # TFLM: the whole Invoke, interpreter included
OPERATORS = "operators"  # microTVM: the operators' rows only

NOT_COMPARABLE = ("X-CUBE-AI rows are not comparable: ST's generated C and its own kernels, neither TFLM's "
                  "interpreter nor CMSIS-NN's kernels, which are what the profile counts")


@dataclasses.dataclass(frozen=True)
class PublishedRow:
    round: str
    submitter: str
    board: str
    core: str
    clock: str
    software: str
    ms: dict[str, float]  # model ("IC", "KWS") -> measured ms per inference


@dataclasses.dataclass(frozen=True)
class Comparison:
    mcu: str
    target: str
    scope: str  # INVOKE or OPERATORS
    tolerance: float | None  # None: no pass criterion (2020 software)


class ReferenceTableError(ValueError):
    pass


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def published_rows(text: str) -> list[PublishedRow]:
    """Every row of every latency table of the README ``text`` (tables whose header has a
    ``board`` column and an ``IC ms``/``KWS ms`` column per model)."""
    rows: list[PublishedRow] = []
    header: list[str] | None = None
    for line in text.splitlines():
        if not line.strip().startswith("|"):
            header = None
            continue
        cells = _cells(line)
        if header is None:
            header = cells if "board" in cells and all(f"{m} ms" in cells for m in MODELS) else []
            continue
        if not header or set(line.replace("|", "").strip()) <= set("-: "):
            continue
        col = dict(zip(header, cells))
        try:
            ms = {m: float(col[f"{m} ms"].replace(",", "")) for m in MODELS}
        except ValueError:
            raise ReferenceTableError(f"README row {line.strip()!r}: the IC/KWS ms cells are not numbers") from None
        rows.append(PublishedRow(round=col.get("MLPerf Tiny round", ""), submitter=col.get("submitter", ""),
                                 board=col["board"], core=col.get("core", ""), clock=col.get("clock", ""),
                                 software=col.get("software", ""), ms=ms))
    return rows


def default_reference() -> Path:
    """``shared/reference/mlperf_tiny`` in the nearest folder above the checkout that has
    ``shared/reference`` (a checkout of its own, or a git worktree deeper down)."""
    here = Path(__file__).resolve()
    return next((p / "shared" / "reference" / "mlperf_tiny" for p in here.parents[1:]
                 if (p / "shared" / "reference").is_dir()), here.parents[2] / "shared" / "reference" / "mlperf_tiny")


def read_reference(reference: Path) -> tuple[list[PublishedRow], list[str]]:
    """The rows of ``reference/README.md`` and the notes on what it lists that is not comparable."""
    readme = Path(reference) / "README.md"
    try:
        text = readme.read_text()
    except OSError as e:
        raise ReferenceTableError(f"{readme}: cannot read the MLPerf Tiny reference ({e.strerror}); give --reference "
                             "the folder ../shared/reference/mlperf_tiny") from None
    rows = published_rows(text)
    if not rows:
        raise ReferenceTableError(f"{readme}: no latency table (a header with board, IC ms and KWS ms columns) found")
    return rows, [NOT_COMPARABLE] if "X-CUBE-AI" in text else []


def comparison(row: PublishedRow) -> Comparison:
    """What ``row`` is compared with, and its criterion."""
    if row.board not in BOARDS:
        raise ReferenceTableError(f"board {row.board!r} of the reference README has no microcontroller row here: add it to "
                             "BOARDS in benchmarks/mlperf_reference.py with its tflite_export/mcu_targets.py row")
    if row.round not in ROUND_YEAR:
        raise ReferenceTableError(f"round {row.round!r} ({row.board}): add its software year to ROUND_YEAR in "
                             "benchmarks/mlperf_reference.py")
    mcu, target = BOARDS[row.board]
    scope = OPERATORS if is_microtvm(row) else INVOKE
    if ROUND_YEAR[row.round] < FIRST_YEAR_WITH_CRITERION:
        tolerance = None
    else:
        tolerance = M85_TOLERANCE if target == "cortex-m85" else TOLERANCE
    return Comparison(mcu=mcu, target=target, scope=scope, tolerance=tolerance)


def is_microtvm(row: PublishedRow) -> bool:
    """microTVM compiled the graph ahead of time (no TFLM interpreter)."""
    return "microtvm" in row.software.lower()


def software_label(row: PublishedRow) -> str:
    """A short name of the row's runtime: TFLM or microTVM, and its year."""
    return f"{'microTVM' if is_microtvm(row) else 'TFLM'} {ROUND_YEAR.get(row.round, 0)}"


def board_label(row: PublishedRow) -> str:
    return f"{row.board} ({row.round} {row.submitter})"


def check_rows(rows: list[PublishedRow]) -> list[Comparison]:
    """:func:`comparison` of every row (a :class:`ReferenceTableError` names the first it cannot place)."""
    return [comparison(r) for r in rows]

