"""Checks of an accepted command's result: each ``check(p) -> problem | None`` with a ``what``
saying what it compares (shown in the report)."""
from __future__ import annotations

import json
from pathlib import Path

from .files import sha256
from .fixtures import Fixtures


def ok_if(cond: bool, problem: str) -> str | None:
    return None if cond else problem


def same_describe(fx: Fixtures):
    want = (fx.root / "describe.txt").read_text()

    def check(p):
        got = "\n".join(line for line in p.stdout.splitlines() if not line.startswith("warning"))
        return ok_if(got.strip() == want.strip(), "the describe table differs from the clean dataset's")
    check.what = 'the same describe table as the clean dataset'
    return check


def only_feature_dir(work: Path) -> Path | None:
    dirs = [d for d in (work / "features").iterdir() if (d / "config.json").is_file()] if (work / "features").is_dir() else []
    return dirs[0] if len(dirs) == 1 else None


def features_row(fdir: Path, split: str, filename: str):
    import numpy as np
    import pandas as pd

    table = pd.read_csv(fdir / f"{split}.csv")
    idx = table.index[table["filename"] == filename]
    if len(idx) != 1:
        return None
    return np.load(fdir / f"{split}.npy", mmap_mode="r")[idx[0]]


def features_match(fx: Fixtures, work: Path, split: str, filename: str, *, tol: float,
                   other_name: str | None = None):
    """The cache in ``work`` holds ``other_name or filename`` with features within ``tol`` dB of
    the fixture's features of ``filename``."""
    def check(p):
        import numpy as np

        fdir = only_feature_dir(work)
        if fdir is None:
            return f"no single feature cache entry under {work}/features"
        got = features_row(fdir, split, other_name or filename)
        want = features_row(fx.feature_dir(), split, filename)
        if got is None:
            return f"{other_name or filename} is not in the cache's {split} table"
        if not np.isfinite(got).all():
            return "non-finite features"
        diff = float(np.abs(np.asarray(got) - np.asarray(want)).max())
        return ok_if(diff <= tol, f"features of {filename} differ from the clean file's by {diff:.3g} dB (> {tol})")
    check.what = f"its features within {tol:g} dB of the clean file's"
    return check


def run_finished(run: Path, epochs: int):
    def check(p):
        try:
            cfg = json.loads((run / "config.json").read_text())
            state = json.loads((run / "state.json").read_text())
        except (OSError, ValueError) as e:
            return f"run not readable: {e}"
        hist = [h["epoch"] for h in state.get("history", [])]
        if cfg.get("status") != "done":
            return f"run status {cfg.get('status')!r}"
        if state.get("epoch") != epochs or hist != list(range(1, epochs + 1)):
            return f"state.json: epoch {state.get('epoch')}, history epochs {hist}, wanted 1..{epochs}"
        if not (run / "model.keras").is_file():
            return "no model.keras"
        return None
    check.what = f"{run.name}: status done, epochs 1..{epochs} in state.json, model.keras"
    return check


def export_intact(export: Path, *, run: Path | None = None):
    """config.json's recorded sha256 of every file matches, and its source_run is ``run``."""
    def check(p):
        try:
            cfg = json.loads((export / "config.json").read_text())
        except (OSError, ValueError) as e:
            return f"no readable export config.json: {e}"
        for name, digest in cfg.get("files_sha256", {}).items():
            if not (export / name).is_file() or sha256(export / name) != digest:
                return f"{name} does not match config.json's sha256"
        if run is not None and (export / cfg["source_run"]).resolve() != run.resolve():
            return f"source_run {cfg['source_run']} is not {run}"
        return None
    check.what = "every exported file matches its sha256 in config.json" + (" and source_run is the run" if run else "")
    return check


def report_passed(path: Path, **want):
    def check(p):
        try:
            r = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            return f"{path.name} not readable: {e}"
        if not r.get("passed"):
            return f"{path.name}: not passed: {r.get('failures')}"
        for k, v in want.items():
            if k == "host_clips":
                got = [t["clips"] for t in r["targets"] if t["target"] == "host"]
                if got != [v]:
                    return f"host ran {got} clips, wanted {v}"
            elif k == "from_audio":
                if not all(t.get("from_audio") for t in r["targets"]):
                    return "no from-audio result"
            elif r.get(k) != v:
                return f"{k} = {r.get(k)}, wanted {v}"
        return None
    check.what = f"{path.name} passed" + "".join(f", {k}={v}" for k, v in want.items())
    return check


def same_metrics(fx: Fixtures, run: Path):
    def check(p):
        try:
            got = json.loads((run / "metrics.json").read_text())["scores"][0]
            want = json.loads((fx.run / "metrics.json").read_text())["scores"][0]
        except (OSError, ValueError, KeyError) as e:
            return f"metrics.json not readable: {e}"
        return ok_if(got["accuracy"] == want["accuracy"] and abs(got["log_loss"] - want["log_loss"]) < 1e-5,
                     f"overall accuracy/log loss {got['accuracy']:.4f}/{got['log_loss']:.5f}, the same model on the "
                     f"same data gave {want['accuracy']:.4f}/{want['log_loss']:.5f}")
    check.what = "metrics.json equal to the fixture run's (same model, same data)"
    return check


def same_tflite(want: Path, got: Path):
    def check(p):
        if not (got / "model.tflite").is_file():
            return "no model.tflite written"
        return ok_if(sha256(got / "model.tflite") == sha256(want / "model.tflite"),
                     "its model.tflite differs from the export of the same run calibrated on the training data "
                     "(the int8 ranges come from other data)")
    check.what = "model.tflite identical to the fixture export (conversion is deterministic)"
    return check


def same_validation(want: Path, got: Path):
    def check(p):
        try:
            a = json.loads((got / "validation_report.json").read_text())["scores"][0]
            b = json.loads((want / "validation_report.json").read_text())["scores"][0]
        except (OSError, ValueError, KeyError) as e:
            return f"validation_report.json not readable: {e}"
        return ok_if(abs(a["int8_log_loss"] - b["int8_log_loss"]) < 1e-6 and a["int8_accuracy"] == b["int8_accuracy"],
                     f"int8 accuracy/log loss {a['int8_accuracy']:.4f}/{a['int8_log_loss']:.5f}; the unedited export "
                     f"gives {b['int8_accuracy']:.4f}/{b['int8_log_loss']:.5f} (what the firmware computes)")
    check.what = "the int8 scores equal the unedited export's"
    return check


def all_checks(*checks):
    def check(p):
        for c in checks:
            r = c(p)
            if r:
                return r
        return None
    check.what = "; ".join(getattr(c, "what", "") for c in checks if getattr(c, "what", ""))
    return check


def no_partials(folder: Path):
    def check(p):
        left = [x.name for x in Path(folder).rglob("*") if x.name.endswith(".partial")]
        return ok_if(not left, f"staging folders left behind: {left[:3]}")
    check.what = 'no staging folder left'
    return check


def described(what: str, check):
    check.what = what
    return check


def in_stdout(text: str):
    return described(f"stdout says {text!r}", lambda p: ok_if(text in p.stdout, f"stdout does not say {text!r}"))



def what_was_trained(folder: Path, pattern: str = "config.json"):
    """Evidence for an option that should have been refused: what the run(s) under ``folder``
    (``pattern``) trained."""
    def check(p):
        found = []
        for f in sorted(Path(folder).glob(pattern)):
            try:
                cfg = json.loads(f.read_text())
                found.append(f"{cfg['model']['name']} with {cfg['train']['model_overrides']}: "
                             f"{cfg['model']['trainable_params']:,d} parameters")
            except (OSError, ValueError, KeyError):
                continue
        return f"it trained {'; '.join(found)}" if found else None
    check.what = "evidence of what was trained"
    return check






def report_of(model: Path, root: Path, name: str, *, not_in: tuple[Path, ...] = (), passed: bool = False):
    """Some ``name`` (a report) under ``root`` records ``model``'s sha256: the command worked on that
    file's bytes (and, with ``passed``, it passed); and none of ``not_in`` (the export's own report
    folders) was created."""
    def check(p):
        digest = sha256(model)
        made = [x for x in not_in if x.exists()]
        if made:
            return f"it wrote {made[0]} (the export's own report folder), not a folder beside {model.name}"
        recorded = []
        for f in Path(root).rglob(name):
            try:
                r = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
            recorded.append((r.get("tflite_sha256"), r.get("passed")))
        if (digest, True) in recorded or (not passed and any(d == digest for d, _ in recorded)):
            return None
        if any(d == digest for d, _ in recorded):
            return f"the {name} of {model.name} did not pass"
        others = sorted({str(d)[:12] for d, _ in recorded})
        return f"no {name} of {model.name} (sha256 {digest[:12]}): the ones there record {others or 'nothing'}"
    check.what = f"a {name} recording {model.name}'s sha256" + (" that passed" if passed else "")
    return check


def warning_on_stderr(phrase: str):
    """For ``Ctx.warning_check``: the warning that says ``phrase`` is on stderr, not stdout."""
    def check(p):
        if phrase.lower() in p.stdout.lower():
            return f"the warning saying {phrase!r} is printed on stdout (warnings belong on stderr)"
        return None
    return check


def nothing_at(path: Path):
    """For ``Ctx.recheck``: a refused option value left nothing at ``path`` (refused before any work)."""
    def check(p):
        return ok_if(not Path(path).exists(), f"it created {Path(path).name}/ before refusing")
    return check
