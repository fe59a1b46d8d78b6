"""DCASE Task 1 complexity as each year counts it (tflite_export.dcase_rules) and in the export."""
import dataclasses
import shutil

import numpy as np
import pytest

from tflite_export.dcase_rules import (DCASE_RULES, DcaseLimitError, check_dcase_limits, dcase_complexity)

QUIET = dict(log=lambda *_: None)


def _tiny_model():
    """Input 8x10x1 -> conv 3x3x4 (no bias) -> BN -> ReLU -> depthwise 3x3 -> conv 1x1x6 stride 2
    -> global pool -> dense 10. Counted by hand:

    parameters: conv 3*3*1*4 = 36; BN scale+offset 2*4 = 8; depthwise 3*3*4 + 4 = 40;
    1x1 conv 4*6 + 6 = 30; dense 6*10 + 10 = 70; total 184.
    MACs: conv 8*10*4 * 9*1 = 2880; depthwise 8*10*4 * 9 = 2880; 1x1 conv 4*5*6 * 4 = 480;
    dense 6*10 = 60; total 6300.
    """
    import tf_keras as keras

    inp = keras.Input((8, 10, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="c1")(inp)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    x = keras.layers.Conv2D(6, 1, strides=2)(x)
    out = keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inp, out)
    for w in model.weights:
        w.assign(np.ones(w.shape, np.float32))
    kernel = model.get_layer("c1").kernel
    k = np.ones(kernel.shape, np.float32)
    k[..., :2] = 0.0  # 3*3*1*2 = 18 zeros
    kernel.assign(k)
    return model


def test_counts_of_a_tiny_model_equal_a_hand_count():
    from keras_asc.models import count_macs, nonzero_params, trainable_params
    from tflite_export.export import dcase_figures

    model = _tiny_model()
    assert (trainable_params(model), nonzero_params(model), count_macs(model)) == (184, 184 - 18, 6300)
    # 2021: non-zero parameters at 8 bits, no MAC limit; two windows per 0.5 s clip -> 4 inferences per second
    d21 = dcase_figures(model, year=2021, windows_per_clip=2, clip_seconds=0.5)
    assert (d21.params_counted, d21.param_bytes, d21.param_limit_bytes) == (166, 166, 131_072)
    assert (d21.macs_per_second_of_audio, d21.mac_limit, d21.within_limits) == (4 * 6300, None, True)
    # 2024: every parameter, zeros included, and 30 M MACs per inference on one second
    d24 = dcase_figures(model, year=2024, clip_seconds=1.0)
    assert (d24.params_counted, d24.param_bytes, d24.param_limit_bytes) == (184, 184, 128_000)
    assert (d24.macs_per_second_of_audio, d24.mac_limit) == (6300, 30_000_000)


def test_each_years_figures_in_one_table():
    from tflite_export.dcase_rules import complexity_table

    rows = complexity_table(trainable_params=128_001, nonzero_params=10, macs_per_second_of_audio=29_000_000).splitlines()
    assert len(rows) == 2 + len(DCASE_RULES)
    assert rows[2] == "| 2021 | 10 (non-zero) | 10 / 131,072 | 29,000,000 / no limit | yes |"
    assert rows[-1] == "| 2025 | 128,001 (all) | 128,001 / 128,000 | 29,000,000 / 30,000,000 | NO |"


def test_rules_table():
    assert DCASE_RULES[2021].mac_limit is None and not DCASE_RULES[2021].count_zeros
    for year in (2022, 2023, 2024, 2025):
        r = DCASE_RULES[year]
        assert (r.param_limit_bytes, r.mac_limit, r.count_zeros) == (128_000, 30_000_000, True)


def test_over_a_limit_is_named_and_refused_in_one_paragraph():
    c = dcase_complexity(year=2025, trainable_params=128_001, nonzero_params=10, macs_per_second_of_audio=30_000_001)
    assert len(c.over_limits) == 2 and not c.within_limits
    with pytest.raises(DcaseLimitError, match=r"over DCASE 2025's complexity limits: parameters take 128,001 bytes, "
                                              r"1 over .* 1 over the 30,000,000 allowed.*--dcase-year none") as e:
        check_dcase_limits(c)
    assert "\n" not in str(e.value)
    # the same model is within 2021's rules: only its 10 non-zero parameters count, and MACs are free
    assert dcase_complexity(year=2021, trainable_params=128_001, nonzero_params=10,
                            macs_per_second_of_audio=30_000_001).within_limits
    assert "OVER:" in c.describe() and "of 30,000,000 (100.0 %)" in c.describe()


def test_export_reports_the_layouts_year(tiny_export):
    """The tiny dataset is in the TAU 2020 layout: the export counts under 2021's rules, equal to
    dcase_figures of the run's model, in config.json and size_report.txt."""
    from keras_asc.run_record import load_run_model
    from tflite_export.export import dcase_figures
    from tflite_export.export_result import read_export, source_run_dir

    exp = read_export(tiny_export)
    want = dcase_figures(load_run_model(source_run_dir(tiny_export, exp)), year=2021,
                         clip_seconds=exp.features.clip_seconds)
    assert exp.size.dcase == want and want.params_counted == exp.size.dcase2021_nonzero_params
    report = (tiny_export / "size_report.txt").read_text()
    assert want.describe() in report and "| 2025 | " in report


def test_export_over_the_chosen_years_limit_writes_nothing(tiny_run, tiny_dataset, tiny_work, tmp_path, monkeypatch):
    from tflite_export.export import ExportConfig, export_run

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("export"))
    monkeypatch.setitem(DCASE_RULES, 2024, dataclasses.replace(DCASE_RULES[2024], mac_limit=1000))
    with pytest.raises(DcaseLimitError, match="over DCASE 2024's complexity limits"):
        export_run(run, tiny_dataset, tiny_work, config=ExportConfig(calibration_size=20, dcase_year=2024), **QUIET)
    assert not (run / "export").exists()
    exp = export_run(run, tiny_dataset, tiny_work, config=ExportConfig(calibration_size=20, dcase_year=None), **QUIET)
    assert exp.size.dcase is None
    messages = []  # the pipeline's way: exported, warned, figures recorded
    exp = export_run(run, tiny_dataset, tiny_work, config=ExportConfig(calibration_size=20, dcase_year=2024, dcase_refuse=False),
                     log=messages.append)
    assert exp.size.dcase.year == 2024 and not exp.size.dcase.within_limits
    assert any(m.startswith("warning:") and "over DCASE 2024's complexity limits" in m for m in messages)
