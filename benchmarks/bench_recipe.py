"""Today's recipe on generated one-second clips: each technique's effect on seen and unseen devices.

    nice -n 5 .venv/bin/python benchmarks/bench_recipe.py [--out work/bench_recipe] [--seeds 0,1,2]

Generated data says nothing about TAU: the figures show that distillation, Freq-MixStyle and
device impulse responses run and what they do on this toy data, not what they do on real devices.

What it runs, everything small enough for about 40 minutes on two busy cores:

* ``asc make-dataset --size tiny --clip-seconds 1`` (the TAU 2022 one-second layout: 600 train,
  800 evaluate clips; the devices s4-s6 only in evaluate) with its simulated impulse responses;
* log-mel at 43 frames/s (44 frames per one-second clip; 32 frames need 43 frames/s) and
  ``--n-mels``;
* per seed: a teacher, ResNet11 at ``--teacher-width`` on whole clips; then two students at W = 32
  (``--window-frames 32``), the DCASE 2024 baseline-sized ``dcase2024_baseline`` and ``resnet11``,
  each trained plain, with KD from that seed's teacher, with Freq-MixStyle, and with DIR;
* each run scored by :func:`keras_asc.evaluation.evaluate_run`; "seen" is the accuracy over the
  evaluate clips of devices a, b, c, s1-s3, "unseen" over s4-s6.

Prints a Markdown table (mean and standard deviation over seeds, and each seed's figure) and writes
it with every run's figures to ``OUT/results.md`` and ``OUT/results.json``. Runs already finished in
``OUT`` are scored again, not retrained.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

import keras_asc.tf_setup  # noqa: E402,F401  (tf_keras, never Keras 3; before TensorFlow)

STUDENTS = ("dcase2024_baseline", "resnet11")
TECHNIQUES = ("none", "kd", "freq_mixstyle", "dir")


def _accuracies(scores) -> dict:
    dev = scores[scores["group"] == "device"]
    out = {}
    for name, rows in (("seen", dev[~dev["unseen_device"]]), ("unseen", dev[dev["unseen_device"]])):
        out[name] = float((rows["accuracy"] * rows["clips"]).sum() / rows["clips"].sum())
    out["overall"] = float(scores.loc[scores["group"] == "overall", "accuracy"].item())
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="work/bench_recipe")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--n-mels", type=int, default=64, choices=(64, 128, 256))
    p.add_argument("--teacher-width", type=float, default=2.0)
    p.add_argument("--kd", default="0.5,2", help="A,T (default 0.5,2)")
    p.add_argument("--freq-mixstyle", default="0.4,0.3", help="P,ALPHA (default CP-JKU's 0.4,0.3)")
    p.add_argument("--dir-p", type=float, default=0.6, help="DIR probability per clip (default 0.6)")
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args()

    import tf_keras as keras

    from keras_asc.evaluation import evaluate_run
    from keras_asc.feature_cache import build_feature_cache
    from keras_asc.features import FeatureConfig
    from keras_asc.synth import make_dataset
    from keras_asc.training import train
    from keras_asc.training_config import TrainConfig

    out = Path(a.out)
    quiet = dict(log=lambda *_: None)
    t_start = time.perf_counter()
    data = make_dataset(out / "data", size="tiny", seed=0, clip_seconds=1.0, workers=a.workers, log=print)
    layout = json.loads((data / "synth_config.json").read_text()).get("layout", "tau2020")
    fs = build_feature_cache(data, out / "work", config=FeatureConfig.seed(frames_per_second=43, n_mels=a.n_mels,
                                                                          clip_seconds=1.0),
                             workers=a.workers, log=print)
    kd_weight, kd_t = (float(v) for v in a.kd.split(","))
    fms_p, fms_alpha = (float(v) for v in a.freq_mixstyle.split(","))
    base = TrainConfig(epochs=a.epochs, batch_size=32, learning_rate=2e-3)
    rows, seconds = [], {}

    def run(name: str, cfg: TrainConfig) -> Path:
        run_dir = out / "runs" / name
        t = time.perf_counter()
        if not (run_dir / "config.json").is_file() or json.loads((run_dir / "config.json").read_text()).get(
                "status") != "done":
            keras.backend.clear_session()
            train(fs, run_dir, config=cfg, resume=(run_dir / "state.json").is_file(), workers=a.workers, **quiet)
        seconds[name] = round(time.perf_counter() - t, 1)
        return run_dir

    for seed in (int(s) for s in a.seeds.split(",")):
        teacher = run(f"teacher_resnet11_w{a.teacher_width:g}_s{seed}", dataclasses.replace(
            base, model="resnet11", model_overrides=(("width", a.teacher_width),), seed=seed))
        acc = _accuracies(evaluate_run(teacher, data, out / "work", workers=a.workers, **quiet))
        rows.append({"model": f"resnet11 width {a.teacher_width:g} (teacher, whole clip)", "technique": "none",
                     "seed": seed, **acc})
        print(f"seed {seed} teacher: {acc}", flush=True)
        for model in STUDENTS:
            for tech in TECHNIQUES:
                cfg = dataclasses.replace(base, model=model, seed=seed, window_frames=32)
                if tech == "kd":
                    cfg = dataclasses.replace(cfg, teachers=(str(teacher.resolve()),), kd_weight=kd_weight,
                                              kd_temperature=kd_t)
                elif tech == "freq_mixstyle":
                    cfg = dataclasses.replace(cfg, freq_mixstyle_p=fms_p, freq_mixstyle_alpha=fms_alpha)
                elif tech == "dir":
                    cfg = dataclasses.replace(cfg, dir_folder=str((data / "impulse_responses").resolve()),
                                              dir_p=a.dir_p)
                run_dir = run(f"{model}_W32_{tech}_s{seed}", cfg)
                keras.backend.clear_session()
                acc = _accuracies(evaluate_run(run_dir, data, out / "work", workers=a.workers, **quiet))
                rows.append({"model": f"{model} W=32", "technique": tech, "seed": seed, **acc})
                print(f"seed {seed} {model} {tech}: seen {acc['seen']:.3f} unseen {acc['unseen']:.3f} "
                      f"({seconds[run_dir.name]:.0f} s)", flush=True)

    import pandas as pd

    df = pd.DataFrame(rows)
    lines = ["| model | technique | seen devices | unseen devices (s4-s6) | unseen, per seed |", "|---|---|---|---|---|"]
    for (model, tech), g in df.groupby(["model", "technique"], sort=False):
        def ms(col):
            return f"{100 * g[col].mean():.1f} ± {100 * g[col].std(ddof=1) if len(g) > 1 else 0:.1f} %"
        lines.append(f"| {model} | {tech} | {ms('seen')} | {ms('unseen')} | "
                     f"{', '.join(f'{100 * v:.1f}' for v in g['unseen'])} |")
    total = round(time.perf_counter() - t_start, 1)
    header = (f"{len(df)} runs, seeds {a.seeds}, {a.epochs} epochs, {a.n_mels} mel bands at 43 frames/s, generated "
              f"dataset 'tiny' at 1 s ({layout} layout, {fs.config['clips']['train']} train / "
              f"{fs.config['clips']['evaluate']} evaluate clips); KD A,T = {a.kd} from the seed's teacher; "
              f"Freq-MixStyle P,ALPHA = {a.freq_mixstyle}; DIR P = {a.dir_p:g} over the dataset's simulated responses; "
              f"{total:.0f} s in all on {platform.machine()} ({time.strftime('%Y-%m-%d', time.gmtime())})")
    text = header + "\n\n" + "\n".join(lines)
    print(text)
    (out / "results.md").write_text(text + "\n")
    (out / "results.json").write_text(json.dumps({"rows": rows, "seconds": seconds, "header": header,
                                                  "args": vars(a)}, indent=1))


if __name__ == "__main__":
    main()
