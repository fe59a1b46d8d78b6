"""``asc fit``'s fast lane: option errors, the candidate order, the feasibility gate (infeasible
candidates listed with the limit they broke and never trained), the Pareto front, the report."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

import keras_asc
from asc_cli.fitting.feasibility import ArchitectureEstimate, Feasibility, Limits, broken_limits
from asc_cli.fitting.pareto import dominates, pareto_front
from asc_cli.fitting.prove import Finalist
from asc_cli.fitting.report import REPORT_FILES, write_report
from asc_cli.fitting.search import CandidateRow, FitResult, choose_trials, default_limits, pick_winner
from asc_cli.fitting.space import Candidate, SearchSpace, candidate_sequence, trial_config
from asc_cli.main import main
from tflite_export.untrained import snap_to_levels
from asc_cli.stages import PipelineConfig

LIMITS = Limits(mcu="stm32f407", flash_bytes=1 << 20, ram_bytes=128 << 10, ms_per_clip=1000.0)
SPACE = SearchSpace(widths=(0.125, 0.25, 0.5), windows=(None, 32), frames_per_second=(28,), mels=(64, 128),
                    quantizations=("ptq", "qat"))


@pytest.mark.parametrize("argv,named", [
    (["--mcu", "no-such-chip"], "--mcu"),
    (["--mcu", "stm32f407", "--quantization", "fp16"], "--quantization"),
    (["--mcu", "stm32f407", "--budget-trials", "0"], "--budget-trials"),
])
def test_a_bad_option_value_exits_2_naming_it(argv, named, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["fit", "--data", str(tmp_path), "--out", str(tmp_path / "out"), *argv])
    assert e.value.code == 2
    assert named in capsys.readouterr().err


def test_a_width_model_argument_is_refused_in_one_paragraph(tmp_path, capsys):
    code = main(["fit", "--data", str(tmp_path), "--out", str(tmp_path / "out"), "--mcu", "stm32f407",
                 "--model-arg", "width=0.5"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert "--widths" in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_folder_that_is_no_dataset_is_refused_before_any_work(tmp_path, capsys):
    code = main(["fit", "--data", str(tmp_path), "--out", str(tmp_path / "out"), "--mcu", "stm32f407",
                 "--widths", "0.25", "--windows", "16", "--frames", "28", "--mels", "64", "--clip-seconds", "2"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and str(tmp_path) in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_the_same_seed_gives_the_same_candidate_sequence():
    assert candidate_sequence(SPACE, seed=7) == candidate_sequence(SPACE, seed=7)


def test_another_seed_gives_another_order_of_the_same_candidates():
    a, b = candidate_sequence(SPACE, seed=7), candidate_sequence(SPACE, seed=8)
    assert a != b and set(a) == set(b)


def test_the_sequence_holds_every_candidate_of_the_space_once():
    seq = candidate_sequence(SPACE, seed=0)
    assert len(seq) == len(set(seq)) == SPACE.size


def test_candidates_differing_only_in_quantization_share_a_trial():
    base = PipelineConfig(train=keras_asc.TrainConfig(model_overrides=(("stem_channels", 16.0),)))
    ptq, qat = (Candidate("resnet11", 0.25, 32, None, 28, 64, q) for q in ("ptq", "qat"))
    assert trial_config(ptq, base=base) == trial_config(qat, base=base)
    assert dict(trial_config(ptq, base=base).train.model_overrides) == {"stem_channels": 16.0, "width": 0.25}


def test_each_broken_limit_is_named_with_its_option():
    broken = broken_limits(flash_bytes=2 << 20, ram_bytes=200_000, ms_per_clip=1500.0, limits=LIMITS)
    assert [next(o for o in ("--max-flash", "--max-ram", "--max-ms-per-clip") if o in b) for b in broken] == [
        "--max-flash", "--max-ram", "--max-ms-per-clip"]
    assert broken_limits(flash_bytes=1, ram_bytes=1, ms_per_clip=1.0, limits=LIMITS) == ()


def _fake_check(candidate: Candidate) -> Feasibility:
    """RAM grows with the width and the whole clip: width 0.5 and whole-clip 128-band models break it."""
    ram = int(200_000 * candidate.width * (4 if candidate.window_frames is None else 1) * candidate.n_mels / 64)
    est = ArchitectureEstimate(key="k", architecture={}, mcu=LIMITS.mcu, params=1, macs_per_inference=1,
                               flatbuffer_bytes=1, arena_bytes=ram, image_flash_bytes=1000,
                               instructions_per_inference=1, ms_per_inference=1.0, weights_seed=0)
    return Feasibility(candidate=candidate, key="k", windows_per_clip=1, estimate=est, ram_bytes=ram, ms_per_clip=1.0,
                       broken=broken_limits(flash_bytes=1000, ram_bytes=ram, ms_per_clip=1.0, limits=LIMITS))


def test_infeasible_candidates_are_listed_with_the_limit_they_broke_and_never_trained():
    rows, cells = choose_trials(SPACE, seed=0, budget_trials=100, base=PipelineConfig(), check=_fake_check,
                                log=lambda *_: None)
    infeasible = [r for r in rows if r.status == "infeasible"]
    assert infeasible and all(any("--max-ram" in b for b in r.broken) and r.trial == "" for r in infeasible)
    trained_cells = {c.name for c in cells}
    for r in infeasible:
        assert trial_config(r.candidate, base=PipelineConfig()).name not in trained_cells
    assert all(_fake_check(trial_candidate).fits for trial_candidate in (r.candidate for r in rows if r.trial))


def test_the_trial_budget_caps_the_distinct_trainings():
    rows, cells = choose_trials(SPACE, seed=0, budget_trials=2, base=PipelineConfig(), check=_fake_check,
                                log=lambda *_: None)
    assert len(cells) == 2
    assert {r.trial for r in rows if r.status == "trained"} == {c.name for c in cells}


def test_a_point_on_the_front_is_dominated_by_none_and_every_other_point_by_one():
    rng = np.random.default_rng(0)
    points = [{"accuracy": float(a), "ms_per_clip": float(m), "ram_bytes": int(r), "flash_bytes": int(f)}
              for a, m, r, f in zip(rng.random(40), rng.random(40), rng.integers(1, 9, 40), rng.integers(1, 9, 40))]
    front = set(pareto_front(points))
    objectives = dict(maximize="accuracy", minimize=("ms_per_clip", "ram_bytes", "flash_bytes"))
    assert front
    for i, p in enumerate(points):
        beaten = any(dominates(q, p, **objectives) for q in points)
        assert beaten == (i not in front)


def test_equal_points_are_both_kept_and_a_point_missing_a_figure_is_on_no_front():
    p = {"accuracy": 0.5, "ms_per_clip": 10.0, "ram_bytes": 1, "flash_bytes": 1}
    assert pareto_front([p, dict(p), {**p, "accuracy": None}]) == [0, 1]


def _finalist(name: str, accuracy: float, ms: float, *, broken=(), passed=True) -> Finalist:
    c = dataclasses.replace(Candidate("resnet11", 0.25, 32, None, 28, 64, "ptq"), model=name)
    return Finalist(candidate=c, run_dir="r", export_dir="e", float_accuracy=accuracy, int8_accuracy=accuracy,
                    arena_bytes=1000, linked_flash_bytes=2000, linked_ram_bytes=3000, linked_on="board stm32f407",
                    ms_per_clip=ms, real_time_factor=ms / 1000, validation_passed=passed, bit_exact_clips="4/4",
                    firmware_passed=passed, broken=tuple(broken))


def test_the_winner_is_the_most_accurate_proven_finalist_within_the_limits():
    finalists = [_finalist("over", 0.9, 10.0, broken=("RAM 1 > 0 bytes (--max-ram)",)),
                 _finalist("unproven", 0.8, 10.0, passed=False), _finalist("slow", 0.7, 20.0),
                 _finalist("fast", 0.7, 10.0)]
    assert pick_winner(finalists).candidate.model == "fast"


def test_the_report_lists_the_front_the_winner_and_each_infeasible_candidate_with_its_limit(tmp_path):
    bad = _fake_check(Candidate("resnet11", 0.5, None, None, 28, 128, "ptq"))
    row = CandidateRow(name=bad.candidate.name, candidate=bad.candidate, status="infeasible", broken=bad.broken,
                       error="", trial="", params=1, macs_per_inference=1, flash_bytes=1000, ram_bytes=bad.ram_bytes,
                       ms_per_clip=1.0)
    win = _finalist("winner", 0.8, 100.0)
    result = FitResult(mcu="stm32f407", limits=LIMITS, space=SPACE, seed=0, engine="local", budget_trials=2,
                       clip_seconds=1.0, data_dir="d", candidates=(row,), finalists=(win,),
                       front=(win.candidate.name,), winner=win.candidate.name, commands=("asc train ...",),
                       bundle="b")
    write_report(result, out_dir=tmp_path, log=lambda *_: None)
    assert all((tmp_path / name).is_file() for name in REPORT_FILES)
    text = (tmp_path / "fit_report.md").read_text()
    line = next(t for t in text.splitlines() if t.startswith(f"| {row.name} |"))
    assert "infeasible" in line and bad.broken[0] in line
    report = json.loads((tmp_path / "fit_report.json").read_text())
    assert report["winner"] == win.candidate.name and report["front"] == [win.candidate.name]


def test_default_limits_are_the_microcontroller_row_and_real_time():
    import tflite_export

    row = tflite_export.MCU_TARGETS["stm32f407"]
    limits = default_limits("stm32f407", clip_seconds=10.0)
    assert (limits.flash_bytes, limits.ram_bytes, limits.ms_per_clip) == (row.flash_bytes, row.largest_sram_bytes,
                                                                          10_000.0)


def test_snapped_weights_take_at_most_the_levels_asked():
    w = np.random.default_rng(0).normal(size=(3, 3, 8, 16)).astype(np.float32)
    snapped = snap_to_levels(w, levels=16)
    assert snapped.shape == w.shape and len(np.unique(snapped)) <= 16
    assert np.abs(snapped - w).max() <= (w.max() - w.min()) / 15 / 2 + 1e-6


def test_every_dimension_of_the_space_is_a_candidate_field():
    fields = {f.name for f in dataclasses.fields(Candidate)}
    assert len(SearchSpace().dimensions()) == len(fields)
    assert all(len(values) for _, values in SearchSpace().dimensions())
    assert SearchSpace().size == np.prod([len(v) for _, v in SearchSpace().dimensions()])


def test_the_bases_other_model_arguments_are_part_of_the_estimated_architecture():
    c = candidate_sequence(SPACE, seed=0)[0]
    plain = c.architecture(frames_per_inference=32)
    assert c.architecture(frames_per_inference=32, overrides=(("width", 0.5),)) == plain  # the candidate's width rules
    stem = c.architecture(frames_per_inference=32, overrides=(("stem_channels", 16.0),))
    assert stem["overrides"] == [["stem_channels", 16.0]] and {**stem, "overrides": None} != plain
