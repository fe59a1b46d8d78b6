"""Helpers of the CLI tests that check what a refused command leaves behind."""
from __future__ import annotations

from asc_cli.main import main
from keras_asc import artifacts


def run_asc(argv, capsys) -> tuple[int, str]:
    try:
        status = main([str(a) for a in argv])
    except SystemExit as e:  # argparse
        status = e.code
    return status, capsys.readouterr().err


def file_tree(folder):
    """Every file under ``folder`` with its bytes: what must survive a refused command."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def staged_folder(folder, stage, files):
    """``folder`` written by ``stage`` (its staging) with ``files`` ({name: text})."""
    with artifacts.staging_dir(folder, stage=stage) as tmp:
        for name, text in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(text)
    return folder
