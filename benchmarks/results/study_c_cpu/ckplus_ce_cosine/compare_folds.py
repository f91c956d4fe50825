"""Pool the CK+ test predictions of ten folds of two run folders and compare them (McNemar on the same images).

Usage: python compare_folds.py RUN_A RUN_B  (each holding fold0 ... fold9 with predictions.npz)
"""
import json
import sys
from pathlib import Path

import numpy as np

from fer_utils.stats import mcnemar_test

a_root, b_root = Path(sys.argv[1]), Path(sys.argv[2])
truth, pred_a, pred_b = [], [], []
for fold in range(10):
    a = np.load(a_root / f"fold{fold}" / "predictions.npz")
    b = np.load(b_root / f"fold{fold}" / "predictions.npz")
    if list(a["source_ids"]) != list(b["source_ids"]):
        raise SystemExit(f"fold{fold}: the two runs tested different images")
    truth.append(a["y_true"])
    pred_a.append(a["y_pred"])
    pred_b.append(b["y_pred"])
    print(fold, *(round(float(np.mean(r["y_pred"] == r["y_true"])), 4) for r in (a, b)))
y, pa, pb = (np.concatenate(v) for v in (truth, pred_a, pred_b))
print("pooled", len(y), float(np.mean(pa == y)), float(np.mean(pb == y)))
print(json.dumps(mcnemar_test(y, pa, pb), default=float))
