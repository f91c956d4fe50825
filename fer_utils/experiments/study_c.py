"""Study C: the multi-scale attention residual network on FER+ and CK+, and its SE x BN ablation table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fer_utils import data as D
from fer_utils.experiments.published import published_table
from fer_utils.experiments.running import check_model_names, prepare, run_cv, run_models


def run_study_c_ferplus(model_names, ds: D.FERDataset, run_dir, *, seed: int, max_per_class: int = 0,
                        val_fraction: float = 0.1, **kwargs) -> pd.DataFrame:
    """Study C's networks on FER+ (or its stand-in): train on Training, select on Validation, test on PrivateTest.

    FER+'s PublicTest (``FER2013Valid``) is reported too but never used for selection.
    """
    prepared = prepare(ds, max_per_class=max_per_class, val_fraction=val_fraction, seed=seed)
    return run_models(model_names, prepared, run_dir, seed=seed, eval_splits=("PublicTest", "PrivateTest"), **kwargs)


def run_study_c_ckplus(model_names, ds: D.FERDataset, run_dir, *, seed: int, k: int = 10, folds=(0,),
                       val_fraction: float = 0.1, **kwargs) -> pd.DataFrame:
    """Study C's networks on CK+ with subject-independent folds; mean (and std) accuracy over ``folds``."""
    check_model_names(model_names)
    rows = [run_cv(name, ds, Path(run_dir) / name, k=k, folds=folds, seed=seed, val_fraction=val_fraction, **kwargs)
            for name in model_names]
    return pd.DataFrame(rows).set_index("model")


def ablation_table(ferplus: pd.DataFrame, ckplus: pd.DataFrame) -> pd.DataFrame:
    """Study C's Table 3 layout: SE x BN (registry flags), our FER+ (PrivateTest) and CK+ (fold mean) vs the paper."""
    from fer_utils import models

    pub = published_table(study="C")
    rows = []
    names = sorted((n for n in models.available_models() if models.model_info(n)["ablation"]),
                   key=lambda n: tuple(models.model_info(n)["ablation"].values()))
    for model in names:
        if model not in ferplus.index and model not in ckplus.index:
            continue
        flags = models.model_info(model)["ablation"]
        ref = {d: pub[(pub.model == model) & (pub.dataset == d)].accuracy for d in ("ferplus", "ckplus")}
        rows.append({"model": model, "SE": flags["se"], "BN": flags["bn"],
                     "FER+ ours": ferplus["PrivateTest_accuracy"].get(model, np.nan),
                     "FER+ paper": float(ref["ferplus"].iloc[0]) if len(ref["ferplus"]) else np.nan,
                     "CK+ ours": ckplus["Test_accuracy"].get(model, np.nan),
                     "CK+ paper": float(ref["ckplus"].iloc[0]) if len(ref["ckplus"]) else np.nan})
    return pd.DataFrame(rows).set_index("model")


def study_c_headline(ferplus: pd.DataFrame, ckplus: pd.DataFrame) -> dict:
    """Index-page numbers for Study C: full model on FER+ PrivateTest and CK+ fold mean."""
    out = {}
    if "msca_resnet" in ferplus.index:
        out["msca_resnet FER+ PrivateTest acc"] = round(float(ferplus.loc["msca_resnet", "PrivateTest_accuracy"]), 4)
    if "msca_resnet" in ckplus.index:
        out["msca_resnet CK+ fold acc"] = round(float(ckplus.loc["msca_resnet", "Test_accuracy"]), 4)
    return out
