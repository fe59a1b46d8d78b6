"""Stage records round-trip through JSON and name the file when one is malformed."""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import pytest

from keras_asc import records
from keras_asc.artifacts import ArtifactError


@dataclasses.dataclass(frozen=True)
class Inner:
    name: str
    shape: tuple[int, ...]
    pair: tuple[float, int]


@dataclasses.dataclass(frozen=True)
class Outer:
    inners: tuple[Inner, ...]
    by_name: dict[str, Inner]
    maybe: Inner | None
    ratio: float
    note: str = "default"
    JSON_PROPERTIES: ClassVar[tuple[str, ...]] = ("count",)

    @property
    def count(self) -> int:
        return len(self.inners)


def _outer() -> Outer:
    a, b = Inner("a", (1, 2), (0.5, 3)), Inner("b", (), (1.0, -1))
    return Outer(inners=(a, b), by_name={"x": b}, maybe=None, ratio=2.0)


def test_round_trip_restores_tuples_and_nested_records(tmp_path):
    records.write(tmp_path / "r.json", _outer())
    back = records.read(Outer, tmp_path / "r.json")
    assert back == _outer()
    assert isinstance(back.inners[0].shape, tuple) and isinstance(back.by_name["x"], Inner)


def test_derived_properties_are_written_and_ignored_on_reading():
    data = records.to_json(_outer())
    assert data["count"] == 2 and data["inners"][0]["shape"] == [1, 2]
    assert records.from_json(Outer, data) == _outer()


def test_integer_json_number_becomes_float_and_defaults_fill_in():
    data = records.to_json(_outer())
    data["ratio"] = 2
    del data["note"]
    back = records.from_json(Outer, data)
    assert isinstance(back.ratio, float) and back.note == "default"


def test_missing_field_names_the_file_and_the_field():
    data = records.to_json(_outer())
    del data["inners"][1]["pair"]
    with pytest.raises(ArtifactError, match=r"some/config\.json: field 'pair' of Inner is missing"):
        records.from_json(Outer, data, source="some/config.json")


@dataclasses.dataclass(frozen=True)
class _Verdict(records.PassedWithoutFailures):
    failures: tuple[str, ...]


@pytest.mark.parametrize("failures", [(), ("a limit exceeded",)])
def test_a_report_passes_when_it_names_no_failure_and_writes_its_verdict(failures):
    data = records.to_json(_Verdict(failures=failures))
    assert data["passed"] == (not failures) and records.from_json(_Verdict, data) == _Verdict(failures=failures)
