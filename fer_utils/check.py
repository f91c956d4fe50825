"""Checking a run before it starts: every parameter the runner can check without data, and a dry run.

:func:`check_parameters` runs before any notebook (``python -m fer_utils.run`` always calls it): model
names against the registry, choices (TTA, normalization, augmentation, optimizer, schedule, loss and
every other training-config key, per model too), CK+ fold numbers, and the split names each notebook
would evaluate against the splits its dataset will have (found on disk without loading it). A typo
fails in seconds, naming the notebook and the key, instead of after hours of training.

:func:`dry_run` (``--check``) additionally builds every model of every notebook at its input size with
its compiled training configuration and trains one step on a tiny random batch, so a ``paper`` run can
be checked on a laptop before it is launched on a GPU.
"""

from __future__ import annotations

import time

import numpy as np

from fer_utils import data as D

#: Parameters holding lists of registry model names, and dicts keyed by them.
MODEL_LISTS = ("models", "explain_models", "study_c_models")
MODEL_KEYED = ("model_kwargs", "input_sizes", "train_configs")
#: Study C's datasets (``study_c_datasets`` of notebooks 04 and 05: which of them a run trains on).
STUDY_C_DATASETS = ("ferplus", "ckplus")
TRAIN_CONFIGS = ("train_config", "ferplus_train_config", "ckplus_train_config", "effect_train_config")


def _train_config(base: dict, per_model: dict | None, name: str):
    from fer_utils import train

    return train.TrainConfig.from_dict({**(base or {}), **((per_model or {}).get(name) or {})})


def check_parameters(stem: str, params: dict) -> list:
    """Problems with one notebook's parameters, as messages naming the notebook and key ([] when fine)."""
    from fer_utils import models, pipeline
    from fer_utils.evaluate.tta import resolve_tta

    problems = []

    def bad(key, message):
        problems.append(f"notebook {stem}: {key}: {message}")

    known = set(models.available_models())
    names = {}
    for key in MODEL_LISTS:
        if key in params:
            unknown = [m for m in params[key] or [] if m not in known]
            if unknown:
                bad(key, f"unknown model(s) {unknown}; known models: {sorted(known)}")
            names[key] = [m for m in params[key] or [] if m in known]
    for key in MODEL_KEYED:
        unknown = [m for m in (params.get(key) or {}) if m not in known]
        if unknown:
            bad(key, f"unknown model(s) {unknown}; known models: {sorted(known)}")
    if "explain_models" in params and "models" in params:
        missing = [m for m in names.get("explain_models", []) if m not in names.get("models", [])]
        if missing:
            bad("explain_models", f"{missing} are not trained by this notebook (models: {params['models']})")
    for key in ("tta", "study_c_tta"):
        if key in params:
            try:
                resolve_tta(params[key], allow_default=False)  # a run records its TTA: no model to take one from
            except ValueError as exc:
                bad(key, str(exc).removeprefix("tta: "))  # "<value>; expected one of [...]"
    if "normalization" in params and params["normalization"] not in ("auto",) + pipeline.NORMALIZATIONS:
        bad("normalization", f"{params['normalization']!r}; expected 'auto' or one of {list(pipeline.NORMALIZATIONS)}")
    for key in ("augment", "study_c_augment"):
        if key in params:
            try:
                pipeline.check_augment(params[key])
            except ValueError as exc:
                bad(key, str(exc))
    problems += _gan_problems(stem, params)
    problems += _tuning_problems(stem, params)
    for a_b in params.get("table_xiii_pairs") or []:
        if len(a_b) != 2 or any(m not in known for m in a_b):
            bad("table_xiii_pairs", f"{a_b}: expected a pair of registry models; known models: {sorted(known)}")
    if "cv_train_config" in params:
        try:
            _train_config({**(params.get("train_config") or {}), **(params["cv_train_config"] or {})}, None, None)
        except (ValueError, TypeError) as exc:
            bad("cv_train_config", str(exc))
    for key in ("effect_model", "study_c_model"):
        if key in params and params[key] not in known:
            bad(key, f"unknown model {params[key]!r}; known models: {sorted(known)}")
    for key in TRAIN_CONFIGS:
        if key not in params:
            continue
        group = "study_c_models" if key != "train_config" else "models"
        per_model = params.get("train_configs") if key == "train_config" else None
        for name in names.get(group, []) or [None]:
            try:
                _train_config(params[key], per_model, name)
            except (ValueError, TypeError) as exc:
                bad(key if name is None or not (per_model or {}).get(name) else f"train_configs.{name}", str(exc))
                break
    if "seeds" in params:
        from fer_utils.experiments.seeds import check_seeds

        try:
            check_seeds(params["seeds"])
        except ValueError as exc:
            bad("seeds", str(exc))
    if "val_fraction" in params and not 0 < params["val_fraction"] < 1:
        bad("val_fraction", f"{params['val_fraction']}; expected a number between 0 and 1")
    if params.get("ferplus_runs") or params.get("ferplus_tables"):
        from fer_utils.experiments.study_c import check_runs

        try:
            check_runs(params.get("ferplus_runs"), names.get("study_c_models", []),
                       params.get("ferplus_train_config") or {}, params.get("ferplus_tables"))
        except ValueError as exc:
            problems.append(f"notebook {stem}: {exc}")
    wrong = [d for d in params.get("study_c_datasets") or [] if d not in STUDY_C_DATASETS]
    if wrong:
        bad("study_c_datasets", f"{wrong}; expected a subset of {list(STUDY_C_DATASETS)}")
    if params.get("ferplus_only"):
        from fer_utils.experiments.study_c import check_runs, selected_runs

        try:
            selected_runs(check_runs(params.get("ferplus_runs"), names.get("study_c_models", []),
                                     params.get("ferplus_train_config") or {}), params["ferplus_only"])
        except ValueError as exc:
            problems.append(f"notebook {stem}: {exc}")
    if "ckplus_k" in params:
        k = params["ckplus_k"]
        if k < 2:
            bad("ckplus_k", f"{k}; expected at least 2 folds")
        wrong = [f for f in params.get("ckplus_folds") or [] if not 0 <= f < k]
        if wrong:
            bad("ckplus_folds", f"{wrong} outside 0..{k - 1} for ckplus_k={k}")
    problems += _check_splits(stem, params)
    return problems


def _check_splits(stem: str, params: dict) -> list:
    """``eval_splits``/``report_split`` against the splits the notebook's dataset will have."""
    if "dataset" not in params:
        return []
    try:
        source, splits = D.expected_splits(params.get("dataset", "auto"), params.get("data_dir", "auto"))
    except D.DataError as exc:
        return [f"notebook {stem}: dataset/data_dir: {exc}"]
    if "eval_splits" not in params:
        return []
    tests = [s for s in splits if s not in ("Training", "all")]
    chosen = list(params["eval_splits"] or []) or tests
    out = []
    missing = [s for s in chosen if s not in tests]
    if missing and tests:
        out.append(f"notebook {stem}: eval_splits: {missing} not in the test splits {tests} of {source} "
                   "(leave eval_splits empty for every test split the dataset has)")
    report = params.get("report_split") or (chosen[-1] if chosen else "")
    if report and report not in chosen:
        out.append(f"notebook {stem}: report_split: {report!r} is not among eval_splits {chosen}")
    return out


def dataset_summary(params: dict) -> str:
    """What data a notebook would find (without loading it), for the check's report."""
    try:
        source, splits = D.expected_splits(params.get("dataset", "auto"), params.get("data_dir", "auto"))
        return f"{source}: splits {list(splits)}"
    except D.DataError as exc:
        return f"error: {exc}"


def _models_to_build(params: dict) -> list:
    """``(label, model, train config dict, per-model config, input size, classes)`` of a notebook's trainings."""
    out = []
    for name in params.get("models") or []:
        size = (params.get("input_sizes") or {}).get(name, params.get("input_size", 48))
        out.append((name, name, params.get("train_config") or {}, params.get("train_configs"), size, 7))
    study_c = params.get("study_c_models") or ([params["study_c_model"]] if params.get("study_c_datasets") else [])
    datasets = params.get("study_c_datasets", STUDY_C_DATASETS)
    ferplus_cfg = params.get("ferplus_train_config") or {}
    # Named FER+ runs (those of ferplus_only when it names some): each distinct model x loss x optimizer once.
    if "ferplus" in datasets and params.get("ferplus_runs"):
        from fer_utils.experiments.study_c import check_runs, selected_runs

        seen = set()
        planned = selected_runs(check_runs(params["ferplus_runs"], study_c, ferplus_cfg), params.get("ferplus_only"))
        for run, (name, cfg, _) in planned.items():
            key = (name, cfg.get("loss"), cfg.get("optimizer"))
            if key not in seen:
                seen.add(key)
                out.append((f"ferplus/{run}", name, cfg, None, 48, 8))
    elif "ferplus" in datasets:
        out += [(f"ferplus/{name}", name, ferplus_cfg, None, 48, 8) for name in study_c]
    if "ckplus" in datasets:
        out += [(f"ckplus/{name}", name, params.get("ckplus_train_config") or {}, None, 48, 7) for name in study_c]
    return out


def dry_run(stem: str, params: dict, report=print) -> list:
    """Build and compile every model of a notebook at its input size and train one step on 2 random images.

    Returns:
        Problems as messages ([] when every model trained its step).
    """
    import keras

    from fer_utils import models, train

    problems = []
    for label, name, base, per_model, size, classes in _models_to_build(params):
        t0 = time.perf_counter()
        try:
            cfg = _train_config(base, per_model, name).replace(run_eagerly=True, tensorboard=False)
            side, channels, _, _ = models.resolve_input(name, size)
            shape = (side, side, channels)
            model, policy = train.build_compiled_model(
                name, cfg, input_shape=shape, num_classes=classes, steps_per_epoch=1,
                model_kwargs=(params.get("model_kwargs") or {}).get(name))
            x = np.random.default_rng(0).random((2, *shape), dtype=np.float32)
            y = np.eye(classes, dtype=np.float32)[[0, 1]]
            loss = float(np.asarray(model.train_on_batch(x, y, return_dict=True)["loss"]))
            if not np.isfinite(loss):
                raise ValueError(f"the training step gave loss {loss}")
            report(f"  {stem}: {label} at {side}x{side}x{shape[2]}, {policy}, {model.count_params():,} params: "
                   f"one step ok ({time.perf_counter() - t0:.1f} s)")
        except Exception as exc:  # every failure is reported, then the check fails
            problems.append(f"notebook {stem}: {label}: {type(exc).__name__}: {exc}")
            report(f"  {stem}: {label}: FAILED ({type(exc).__name__}: {str(exc)[:300]})")
        finally:
            keras.backend.clear_session()
            keras.mixed_precision.set_global_policy("float32")
    return problems


def _gan_problems(stem: str, params: dict) -> list:
    """Notebook 02's GAN settings and balancing plans (plans checked against FER-2013's seven classes)."""
    from fer_utils import data as D

    problems = []
    if "gan" in params:
        from fer_utils.gan.training import GANConfig

        try:
            GANConfig.from_dict(params["gan"])
        except (TypeError, ValueError) as exc:
            problems.append(f"notebook {stem}: gan: {exc}")
    for key in ("plan", "compare_plans"):
        if key not in params:
            continue
        for plan in params[key] if key == "compare_plans" else [params[key]]:
            try:
                D.plan_counts(plan, D.FER2013_CLASSES, {c: 1 for c in D.FER2013_CLASSES})
            except D.DataError as exc:
                problems.append(f"notebook {stem}: {key}: {exc}")
    return problems


def _tuning_problems(stem: str, params: dict) -> list:
    """Notebook 05's search spaces, default configuration and tuners, and every value of a space applied to the
    training config it overrides (a misspelt optimizer in the space fails here, not after hours of trials)."""
    from fer_utils.tune import space as S

    problems = []

    def bad(key, message):
        problems.append(f"notebook {stem}: {key}: {message}")

    def each_value(key, space, base):
        for name in space:
            for value in S.choices(space, name):
                try:
                    S.apply({name: space[name]}, {name: value}, base)
                except (ValueError, TypeError) as exc:
                    bad(key, f"{name}={value!r} gives an invalid training config: {exc}")
                    return

    if "space" in params:
        try:
            space = S.check_space(params["space"])
            S.check_default(space, params.get("default_config") or {})
            each_value("space", space, params.get("train_config") or {})
            if "tuners" in params:
                from fer_utils.tune.search import check_tuner

                settings = params.get("tuner_settings") or {}
                unknown = [k for k in settings if k not in params["tuners"]]
                if unknown:
                    bad("tuner_settings", f"settings for {unknown}, which are not in tuners {params['tuners']}")
                for kind in params["tuners"]:
                    check_tuner(kind, settings.get(kind), space)
        except (ValueError, TypeError) as exc:
            bad("space/default_config/tuners", str(exc))
    if params.get("study_c_datasets") and "study_c_space" in params:
        try:
            space = S.check_space(params.get("study_c_space") or {})
            for name in ("ferplus", "ckplus"):
                each_value("study_c_space", space, params.get(f"{name}_train_config") or {})
        except (ValueError, TypeError) as exc:
            bad("study_c_space", str(exc))
    return problems
