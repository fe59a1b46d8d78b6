"""A finished training run as the later stages read it: its ``config.json`` as a typed
:class:`RunRecord` (:func:`read_run_config`), its model (:func:`load_run_model`) and the features
of other data computed its way (:func:`feature_set_for_run`)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import keras_asc.tf_setup  # noqa: F401  (tf_keras, never Keras 3; before TensorFlow)

from keras_asc import artifacts
from keras_asc.dataset import SCENE_LABELS, train_split_of_run
from keras_asc.errors import AscError
from keras_asc.feature_cache import FeatureSet, build_feature_cache
from keras_asc.features import FeatureConfig, Normalization
from keras_asc.parallel import DEFAULT_WORKERS
from keras_asc.training_config import TrainConfig


def load_run_model(run_dir: Path, *, run: RunRecord | None = None):
    """The best model of a finished run (uncompiled), checked against the ``model_sha256`` its
    ``config.json`` recorded: ``run``'s when the caller has read it (:func:`read_run_config`),
    else read here."""
    import tf_keras as keras  # TensorFlow takes seconds to import: only when a model is loaded

    path = Path(run_dir) / "model.keras"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no trained model; run `asc train --out {run_dir}` first")
    recorded = _recorded_model_sha256(Path(run_dir)) if run is None else _finished_model_sha256(run)
    if recorded is not None and artifacts.sha256_file(path) != recorded:
        raise RunError(f"{path}: is not the model this run trained (its sha256 differs from config.json's "
                       "model_sha256): it was replaced or edited. Restore it, or train again (`asc train`)")
    try:
        return keras.models.load_model(path, compile=False, safe_mode=False)
    except Exception as e:  # a truncated zip, another file renamed .keras: Keras raises many types
        raise RunError(f"{path}: not a readable Keras model ({type(e).__name__}: {str(e)[:200]}); it is truncated "
                       "or not a model. Restore it, or train again (`asc train`)") from None


def _recorded_model_sha256(run_dir: Path) -> str | None:
    path = run_dir / "config.json"
    if not path.is_file():
        return None
    cfg = artifacts.read_json(path)
    return cfg.get("model_sha256") if isinstance(cfg, dict) and cfg.get("status") == "done" else None


def _finished_model_sha256(run: RunRecord) -> str | None:
    return run.model_sha256 if run.status == "done" else None


class RunError(AscError, ValueError):
    """A run folder that is not a (finished) training run."""


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """A training run's ``config.json`` as the later stages read it: each field its typed record
    (the file is written by :func:`train`; ``record`` keeps the whole JSON for what no stage reads
    as a field: provenance, the model's counts, distillation and augmentation records)."""

    train: TrainConfig
    features: FeatureConfig
    normalization: Normalization
    input_shape: tuple[int, int, int]  # (mel bands, frames per inference, 1)
    labels: tuple[str, ...]
    model_name: str
    feature_key: str | None  # the feature cache entry trained on (None: not recorded)
    status: str  # "training" or "done"
    model_sha256: str | None  # of model.keras when training finished
    record: dict

    @classmethod
    def from_dict(cls, cfg: dict, *, path: Path) -> "RunRecord":
        """Parse ``cfg`` (read from ``path``); a missing or edited field is named (:class:`RunError`),
        never a ``KeyError`` deep in a stage."""
        def bad(field: str, why: str) -> RunError:
            return RunError(f"{path}: field {field!r} {why}; config.json is written by `asc train` and read by "
                            "every later stage, so it must not be edited. Restore it, or train the run again")

        parsed = {}
        for field, parse in (("train", TrainConfig.from_dict), ("features", FeatureConfig.from_dict),
                             ("normalization", Normalization.from_dict)):
            if not isinstance(cfg.get(field), dict):
                raise bad(field, "is missing or not an object")
            try:
                parsed[field] = parse(cfg[field])
            except (KeyError, TypeError, ValueError) as e:
                raise bad(field, f"does not parse ({type(e).__name__}: {e})") from None
        shape = cfg.get("input_shape")
        if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(v, int) and v > 0 for v in shape)):
            raise bad("input_shape", f"is {shape!r}, not [mel bands, frames, 1]")
        mels, bands = parsed["features"].n_mels, len(parsed["normalization"].mean)
        if not shape[0] == mels == bands:
            raise bad("features", f"says {mels} mel bands, but input_shape has {shape[0]} and the normalization "
                      f"{bands}")
        if cfg.get("labels") != list(SCENE_LABELS):
            raise bad("labels", f"is {cfg.get('labels')!r}, not this version's scene labels in their order "
                      f"{list(SCENE_LABELS)} (the model's outputs are in that order)")
        if not isinstance(cfg.get("model"), dict) or not isinstance(cfg["model"].get("name"), str):
            raise bad("model", "is missing or has no 'name'")
        cache = cfg.get("feature_cache") if isinstance(cfg.get("feature_cache"), dict) else {}
        return cls(train=parsed["train"], features=parsed["features"], normalization=parsed["normalization"],
                   input_shape=tuple(shape), labels=tuple(cfg["labels"]), model_name=cfg["model"]["name"],
                   feature_key=cache.get("key"), status=str(cfg.get("status")), model_sha256=cfg.get("model_sha256"),
                   record=cfg)


def read_run_config(run_dir: Path, *, finished: bool = True) -> RunRecord:
    """``RUN_DIR/config.json`` as a :class:`RunRecord`; with ``finished`` (evaluate, export) a run
    whose training never finished is refused, naming how far it got and how to continue it."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise RunError(f"{path}: not a training run folder (no config.json); give the --out folder of `asc train`")
    cfg = artifacts.read_json(path)
    if not isinstance(cfg, dict) or cfg.get("stage") != "train":
        raise RunError(f"{path}: not written by `asc train`; give the --out folder of `asc train`")
    if finished and cfg.get("status") != "done":
        epochs = cfg.get("train", {}).get("epochs", "?") if isinstance(cfg.get("train"), dict) else "?"
        state = Path(run_dir) / "state.json"
        done = artifacts.read_json(state).get("epoch", 0) if state.is_file() else 0
        raise RunError(f"{run_dir}: training has not finished ({done} of {epochs} epochs, status "
                       f"{cfg.get('status')!r}): it was interrupted. Continue it with `asc train --out {run_dir} "
                       "--resume` and the same options, or delete the folder to start again")
    return RunRecord.from_dict(cfg, path=path)


def warn_if_other_training_data(run: RunRecord, fs: FeatureSet, *, run_dir: Path, data_dir: Path, log=print) -> None:
    """Warn when ``fs`` (the features of ``--data``) is not the data the run was trained on: the
    normalization computed from its train split differs from the one the run recorded (or
    ``config.json``'s was edited). Figures and calibration are then on other data; the run's
    normalization is still the one used. The same features (cache key) with another normalization
    can only be an edited ``config.json``: refused (:class:`RunError`)."""
    if fs.config["normalization"] == run.record["normalization"]:
        return
    if fs.config.get("key") == run.feature_key:
        raise RunError(f"{Path(run_dir) / 'config.json'}: field 'normalization' differs from the one computed from "
                       "the very features the run was trained on (same cache key): it was edited. config.json is "
                       "written by `asc train` and read by every later stage; restore it, or train the run again")
    log(f"warning: --data {data_dir}: its train split is not the data {run_dir} was trained on (the log-mel "
        "normalization computed from it differs from the one in the run's config.json); the run's normalization "
        "is used, and what follows is on other data. Give the run's own dataset with --data if that was not "
        "intended")


def feature_set_for_run(run: RunRecord, data_dir: Path, work_dir: Path, *, run_dir: Path,
                        workers: int = DEFAULT_WORKERS, log=print) -> FeatureSet:
    """The feature cache for ``data_dir`` computed with the run's feature parameters."""
    fs = build_feature_cache(data_dir, work_dir, config=run.features, workers=workers, log=log,
                             train_split=train_split_of_run(run.record))
    warn_if_other_training_data(run, fs, run_dir=run_dir, data_dir=data_dir, log=log)
    return fs
