"""One ``export_run`` reads the run's record once and parses the flatbuffer once: the parsed
objects are handed to every check instead of bytes or the run folder."""
from __future__ import annotations

from pathlib import Path

from keras_asc import artifacts, run_record
from tflite_export import flatbuffer, model_check
from tflite_export.export import ExportConfig, export_run


def _counting(monkeypatch, owner, name: str, *, counts: dict, key: str, only=None):
    real = getattr(owner, name)

    def wrapper(*args, **kwargs):
        if only is None or only(*args, **kwargs):
            counts[key] = counts.get(key, 0) + 1
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)


def test_export_reads_the_run_record_and_parses_the_flatbuffer_once(tiny_run, tiny_dataset, tiny_work, tmp_path,
                                                                   monkeypatch):
    config_json = (Path(tiny_run) / "config.json").resolve()
    counts: dict[str, int] = {}
    _counting(monkeypatch, artifacts, "read_json", counts=counts, key="run config.json read",
              only=lambda path, *a, **k: Path(path).resolve() == config_json)
    _counting(monkeypatch, run_record.RunRecord, "from_dict", counts=counts, key="run record parsed")
    _counting(monkeypatch, flatbuffer, "read_model", counts=counts, key="flatbuffer parsed")
    flatbuffer._parse_model_cached.cache_clear()  # a parse by an earlier test must not hide one here
    model_check._findings.cache_clear()

    export_run(tiny_run, tiny_dataset, tiny_work, config=ExportConfig(calibration_size=20,
                                                                      export_dir=tmp_path / "export"),
               log=lambda *_: None)

    assert counts == {"run config.json read": 1, "run record parsed": 1, "flatbuffer parsed": 1}
