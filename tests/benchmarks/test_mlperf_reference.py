"""benchmarks/mlperf_reference.py: every row of the shared MLPerf Tiny README is read and placed
(board, target, whole Invoke or operators' sum, criterion); a README it cannot place is refused
naming the fix. Reads text only: no profile."""
from __future__ import annotations

import pytest

from benchmarks.mlperf_reference import (
    INVOKE,
    OPERATORS,
    ReferenceTableError,
    comparison,
    default_reference,
    published_rows,
    read_reference,
)

README = default_reference() / "README.md"


def _table_rows(text: str) -> int:
    """Data rows of the tables whose header names a board: counted from the text, not parsed."""
    n, in_table = 0, False
    for line in text.splitlines():
        if "| board |" in line:
            in_table = True
        elif not line.startswith("|"):
            in_table = False
        elif in_table and not line.startswith("|---"):
            n += 1
    return n


def test_every_row_of_the_shared_readme_is_read_and_placed():
    rows, notes = read_reference(README.parent)
    assert len(rows) == _table_rows(README.read_text()) >= 5
    places = {(r.round, r.board): comparison(r) for r in rows}
    assert {b for _, b in places} >= {"NUCLEO-L4R5ZI", "EK-RA6M4", "nRF5340 DK", "EK-RA8D1"}
    assert all(r.ms["IC"] > r.ms["KWS"] > 0 for r in rows)
    assert any("X-CUBE-AI" in n and "not comparable" in n for n in notes)


def test_microtvm_rows_compare_with_the_operators_and_tflm_rows_with_the_invoke():
    rows, _ = read_reference(README.parent)
    for r in rows:
        assert comparison(r).scope == (OPERATORS if "microTVM" in r.software else INVOKE)


def test_criteria_2020_none_2022_on_15_percent_the_m85_25_percent():
    rows, _ = read_reference(README.parent)
    by = {(r.round, r.board): comparison(r) for r in rows}
    assert by[("v0.5", "NUCLEO-L4R5ZI")].tolerance is None
    assert by[("v0.7", "EK-RA6M4")].tolerance == by[("v1.0", "nRF5340 DK")].tolerance == 0.15
    assert (by[("v1.2", "EK-RA8D1")].target, by[("v1.2", "EK-RA8D1")].tolerance) == ("cortex-m85", 0.25)


def test_a_board_without_a_microcontroller_row_is_refused_naming_the_fix():
    text = ("| MLPerf Tiny round | submitter | board | core | clock | software | IC ms | KWS ms |\n"
            "|---|---|---|---|---|---|---|---|\n| v1.0 | x | SAMD51 | Cortex-M4 | 120 MHz | TFLM | 1.5 | 2 |\n")
    (row,) = published_rows(text)
    with pytest.raises(ReferenceTableError, match="SAMD51.*BOARDS in benchmarks/mlperf_reference.py"):
        comparison(row)
