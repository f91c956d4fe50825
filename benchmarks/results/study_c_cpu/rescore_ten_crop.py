"""Rescore a FER+ run of notebook 04 with ten-crop TTA on the run's own split (no training).

    python benchmarks/results/study_c_cpu/rescore_ten_crop.py <reports>/cpu/04_cbam/ferplus/ce_warmup_cosine OUT_DIR

The split is the notebook's (FER+ majority labels, validation carved from Training by near-duplicate families,
val_fraction 0.1, seed 42 of the cpu profile); OUT_DIR gets predictions.npz and metrics.json;
a run trained on another split (data checksum) is refused.
"""

import sys

from fer_utils import data, experiments, runs
from fer_utils.experiments import recipe as R

if __name__ == "__main__":
    run, out = sys.argv[1], sys.argv[2]
    ferplus = data.load_optional("ferplus", "auto", stand_in=False, synthetic_per_class=300, seed=42)
    prepared = experiments.prepare(ferplus, max_per_class=0, val_fraction=0.1, seed=42)
    trained_on = runs.read_recipe(run)["data_checksum"]
    if prepared.checksum != trained_on:  # the split is rebuilt here: it must be the one the run trained on
        sys.exit(f"error: {run} trained on data {trained_on[:12]}, this split is {prepared.checksum[:12]}")
    print(R.rescore_tta(run, prepared, out, "ten_crop", ["PublicTest", "PrivateTest"]))
