"""Rescore a FER+ run of notebook 04 with ten-crop TTA on the run's own split (no training).

    python benchmarks/results/study_c_cpu/rescore_ten_crop.py <reports>/cpu/04_cbam/ferplus/ce_warmup_cosine OUT_DIR

The split is the notebook's (FER+ majority labels, validation carved from Training by near-duplicate families,
val_fraction 0.1, seed 42 of the cpu profile); OUT_DIR gets predictions.npz and metrics.json.
"""

import sys

from fer_utils import data, experiments
from fer_utils.experiments import recipe as R

if __name__ == "__main__":
    run, out = sys.argv[1], sys.argv[2]
    ferplus = data.load_optional("ferplus", "auto", stand_in=False, synthetic_per_class=300, seed=42)
    prepared = experiments.prepare(ferplus, max_per_class=0, val_fraction=0.1, seed=42)
    print(R.rescore_tta(run, prepared, out, "ten_crop", ["PublicTest", "PrivateTest"]))
