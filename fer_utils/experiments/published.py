"""The studies' published numbers, in one place (``fer_utils/published.json``, sources named inside).

Two comparisons read them: FER-2013's class counts against Study A's Table II (notebook 01) and our
accuracies against each study's (notebooks 03/04).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

PUBLISHED = Path(__file__).resolve().parent.parent / "published.json"


def published() -> dict:
    """The whole record of published numbers."""
    return json.loads(PUBLISHED.read_text())


def published_table(study: str | None = None, dataset: str | None = None) -> pd.DataFrame:
    """The studies' reported accuracies, one row each (study, dataset, model, setting, accuracy, source)."""
    df = pd.DataFrame(published()["accuracy"])
    if study:
        df = df[df.study.isin([study] if isinstance(study, str) else study)]
    if dataset:
        df = df[df.dataset == dataset]
    return df.reset_index(drop=True)


def published_reference(model_names, dataset: str = "fer2013") -> dict:
    """``{model: best published accuracy}`` for the models that a study reports."""
    pub = published_table(dataset=dataset)
    return {m: float(pub[pub.model == m].accuracy.max()) for m in model_names if (pub.model == m).any()}


def accuracy_vs_published(results: pd.DataFrame, dataset: str = "fer2013", split: str = "PrivateTest") -> pd.DataFrame:
    """Our accuracy next to each study's reported numbers for the same model name.

    The studies do not all say which test split they report; we compare on ``split`` and say so, as published
    and deduplicated (copies of training images left out, when the results carry those columns).
    """
    pub = published_table(dataset=dataset)
    col = f"{split}_accuracy"
    rows = []
    for model, r in results.iterrows():
        arch = r.get("arch", model)
        ref = pub[pub.model == (model if pd.isna(arch) else arch)]
        rows.append({"model": model, f"ours ({split})": r.get(col, np.nan),
                     "ours macro-F1": r.get(f"{split}_macro_f1", np.nan),
                     f"ours ({split}, dedup)": r.get(f"{split}_dedup_accuracy", np.nan),
                     "ours macro-F1 (dedup)": r.get(f"{split}_dedup_macro_f1", np.nan),
                     "published": "; ".join(f"{a:.4f} ({s}, {src})" for a, s, src in
                                            zip(ref.accuracy, ref.setting, ref.source)) or "-"})
    return pd.DataFrame(rows).set_index("model")


def class_counts_vs_published(ds) -> pd.DataFrame:
    """FER-2013 class counts next to Study A's Table II, with a ``match`` column.

    Returns an empty frame for datasets that are not FER-2013 with its three splits.
    """
    ref = published()["fer2013_class_counts"]
    if ds.class_names != tuple(ref["classes"]) or not {"Training", "PublicTest", "PrivateTest"} <= set(ds.split_names):
        return pd.DataFrame()
    counts = ds.class_counts()
    rows = []
    for i, name in enumerate(ref["classes"]):
        train = int(counts.loc[name, "Training"])
        test = int(counts.loc[name, "PublicTest"] + counts.loc[name, "PrivateTest"])
        rows.append({"class": name, "train": train, "published train": ref["train"][i], "test (Public+Private)": test,
                     "published test": ref["test"][i],
                     "match": train == ref["train"][i] and test == ref["test"][i]})
    return pd.DataFrame(rows).set_index("class")


def split_totals(ds) -> pd.DataFrame:
    """Rows per split next to the published FER-2013 totals (where the split names match)."""
    ref = published()["fer2013_class_counts"]["split_totals"]
    return pd.DataFrame([{"split": s, "rows": int((ds.splits == s).sum()), "published (FER-2013)": ref.get(s)}
                         for s in ds.split_names]).set_index("split")
