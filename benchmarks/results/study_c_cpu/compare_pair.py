"""McNemar's test of two FER+ run folders (or rescores) on the same test images: the contrasts a settings table, which
compares each run with its first only, does not print (e.g. the loss effect under the other schedule).

Usage: python benchmarks/results/study_c_cpu/compare_pair.py RUN_A RUN_B [SPLIT]   (SPLIT: PrivateTest by default)

Prints both accuracies on SPLIT, the difference B - A in points, the discordant counts (A right / B right) and the
p-value; two folders scored on other data, images or labels are refused.
"""
import json
import sys

from fer_utils import runs
from fer_utils.stats import mcnemar_test


def compare(folder_a, folder_b, split: str = "PrivateTest") -> dict:
    """Accuracies of both runs on ``split``, ``diff`` (B - A, points), discordant counts and McNemar's p."""
    a, b = runs.load_predictions(folder_a), runs.load_predictions(folder_b)
    for folder, p in ((folder_a, a), (folder_b, b)):
        if p.get("split") is None or p.get("source_ids") is None:
            raise SystemExit(f"error: {folder}'s predictions carry no split or source ids to pair images by")
    sums = [runs.read_metrics(f).get("headline", {}).get("data_checksum") for f in (folder_a, folder_b)]
    if sums[0] != sums[1]:
        raise SystemExit(f"error: {folder_a} and {folder_b} were scored on different data ({sums[0]} vs {sums[1]})")
    ma, mb = a["split"] == split, b["split"] == split
    if not ma.any() or list(a["source_ids"][ma]) != list(b["source_ids"][mb]) or \
            list(a["y_true"][ma]) != list(b["y_true"][mb]):
        raise SystemExit(f"error: {folder_a} and {folder_b} were not scored on the same {split} images and labels")
    y = a["y_true"][ma]
    right_a, right_b = a["y_pred"][ma] == y, b["y_pred"][mb] == y
    test = mcnemar_test(y, a["y_pred"][ma], b["y_pred"][mb])
    return {"split": split, "images": int(len(y)), "acc_a": float(right_a.mean()), "acc_b": float(right_b.mean()),
            "diff": round(100 * float(right_b.mean() - right_a.mean()), 2),
            "a_right_b_wrong": int(test["a right b wrong"]), "b_right_a_wrong": int(test["a wrong b right"]),
            "p": float(test["p"])}


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    print(json.dumps(compare(*sys.argv[1:])))
