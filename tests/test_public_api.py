"""The public Python API (docs/api.md): each package's functions exist, take keyword arguments only,
importing a package imports no TensorFlow, and cheap calls on the session fixtures return the
typed records."""
from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import firmware_harness
import keras_asc
import tflite_export

REPO = Path(__file__).resolve().parents[1]
#: package -> the functions a user calls (docs/api.md)
FUNCTIONS = {
    keras_asc: ("make_dataset", "describe_dataset", "extract_features", "check_run_folder", "train", "evaluate", "list_models",
                "model_summary", "dataset_clip_seconds"),
    tflite_export: ("export_model", "list_mcus", "check_tflite"),
    firmware_harness: ("resolve_model_source", "validate", "check_firmware", "profile", "profile_mcus", "bundle",
                       "list_targets", "format_report"),
}
#: functions of one positional argument (what they act on), by design
POSITIONAL = {"resolve_model_source", "format_report"}


@pytest.mark.parametrize("package,name", [(p, n) for p, names in FUNCTIONS.items() for n in names])
def test_the_function_is_public_and_keyword_only(package, name):
    func = getattr(package, name)
    assert name in package.__all__ and callable(func)
    params = inspect.signature(func).parameters.values()
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    assert positional == ([] if name not in POSITIONAL else positional[:1])
    assert func.__doc__


@pytest.mark.parametrize("package", ["keras_asc", "tflite_export", "firmware_harness"])
def test_importing_a_package_imports_no_tensorflow(package):
    code = f"import sys, {package}; sys.exit('tensorflow' in sys.modules or 'tf_keras' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


@pytest.mark.parametrize("package", [keras_asc, tflite_export, firmware_harness], ids=lambda p: p.__name__)
def test_every_public_name_resolves(package):
    missing = [n for n in package.__all__ if not hasattr(package, n)]
    assert not missing


def test_every_function_firmware_harness_api_defines_is_public():
    """A function added to the facade is public: it is in ``__all__`` (the package's names)."""
    import firmware_harness.api as api

    defined = [n for n, f in vars(api).items()
               if inspect.isfunction(f) and f.__module__ == api.__name__ and not n.startswith("_")]
    assert defined and not [n for n in defined if n not in api.__all__]


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no_such_function"):
        keras_asc.no_such_function  # noqa: B018


def test_list_mcus_returns_the_microcontroller_records():
    mcus = tflite_export.list_mcus()
    assert mcus and all(isinstance(m, tflite_export.McuTarget) and m.name == n for n, m in mcus.items())


def test_list_targets_returns_the_firmware_target_records():
    targets = firmware_harness.list_targets()
    assert set(firmware_harness.DEFAULT_TARGETS) <= set(targets)
    assert all(isinstance(t, firmware_harness.Target) for t in targets.values())


def test_describe_dataset_returns_its_record(tiny_dataset):
    d = keras_asc.describe_dataset(data_dir=tiny_dataset)
    assert isinstance(d, keras_asc.DatasetDescription) and d.layout and "train" in d.counts


def test_an_export_resolves_to_a_model_source_with_its_record(tiny_export):
    source = firmware_harness.resolve_model_source(tiny_export)
    assert isinstance(source, firmware_harness.ModelSource)
    assert isinstance(source.export, tflite_export.ExportResult) and source.export_dir == tiny_export


def test_check_tflite_returns_its_report(tiny_export):
    report = tflite_export.check_tflite(path=tiny_export / "model.tflite")
    assert isinstance(report, tflite_export.ModelCheckReport) and report.operators > 0


def test_validate_of_a_bare_tflite_returns_its_report(tiny_export, tmp_path):
    model = tmp_path / "copy.tflite"
    model.write_bytes((tiny_export / "model.tflite").read_bytes())
    report = firmware_harness.validate(source=model, random_count=2, workers=1, log=lambda *_: None)
    assert isinstance(report, firmware_harness.ModelValidationReport) and dataclasses.is_dataclass(report)
    assert (tmp_path / "copy.validation" / "validation_report.json").is_file()
    assert "copy.tflite" in firmware_harness.format_report(report)


def test_building_the_cli_parser_imports_no_tensorflow():
    code = ("import sys; from asc_cli.main import build_parser; build_parser(); "
            "sys.exit('tensorflow' in sys.modules or 'tf_keras' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def _help(*argv: str) -> str:
    from asc_cli.main import build_parser

    sub = build_parser()._subparsers._group_actions[0].choices[argv[0]]
    return " ".join(sub.format_help().split())


def test_the_target_help_of_export_names_every_microcontroller():
    text = _help("export")
    assert all(name in text.replace("- ", "-") for name in tflite_export.list_mcus())


@pytest.mark.parametrize("command", ["train", "demo", "grid"])
def test_the_model_help_names_every_registered_model(command):
    text = _help(command)
    assert all(name in text for name in keras_asc.MODELS)


def test_the_targets_help_of_profile_names_every_profile_target():
    text = _help("profile")
    assert all(name in text for name in firmware_harness.PROFILE_TARGETS)


#: What asc_cli and the notebook may import of the three packages besides the packages themselves
#: (their public API): the artifact rules and errors every stage shares, TensorFlow's set-up, the lazy names.
SUPPORT_MODULES = {"keras_asc.artifacts", "keras_asc.errors", "keras_asc.tf_setup", "keras_asc.lazy_names"}


def _imports_of_the_packages(path: Path) -> set[str]:
    import ast

    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in SUPPORT_MODULES else node.module
                      for a in node.names}
    return {n for n in names if n.split(".")[0] in ("keras_asc", "tflite_export", "firmware_harness")}


@pytest.mark.parametrize("path", sorted((REPO / "asc_cli").rglob("*.py")) + [REPO / "notebooks" / "walkthrough.py"],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_the_cli_and_the_notebook_import_only_the_public_api(path):
    allowed = {"keras_asc", "tflite_export", "firmware_harness", *SUPPORT_MODULES}
    assert _imports_of_the_packages(path) <= allowed
