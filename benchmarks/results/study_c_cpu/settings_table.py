"""One of notebook 04's FER+ settings tables (the cpu profile's ``ferplus_tables``) from run folders kept apart.

    python benchmarks/results/study_c_cpu/settings_table.py TABLE OUT.csv RUN=FOLDER [RUN=FOLDER ...]

Each run of TABLE is read from its FOLDER: a run folder of notebook 04, its committed copy without the model, or a
rescore of one (``rescore_ten_crop.py``: predictions.npz and metrics.json). The table is the notebook's own
(``experiments.study_c_settings_tables``: the change against the first run from the profile's settings, McNemar on
the same PrivateTest images, the published column) on the profile's split (FER+ majority labels, validation carved
from Training by near-duplicate families); no training. A folder scored on another split (data checksum) or a run
the table does not name is refused before anything is compared.
"""

import sys
import tempfile
from pathlib import Path

from fer_utils import data, experiments, runs
from fer_utils import params as P

ROOT = Path(__file__).resolve().parents[3]


def settings_table(title: str, folders: dict):
    """The profile's table ``title`` with each of its runs read from ``folders[run]`` (a DataFrame)."""
    notebook = ROOT / "notebooks" / "04_cbam.ipynb"  # its parameters cell's defaults, then the profile's values
    p = {**P.notebook_parameters(notebook),
         **P.resolve(P.load_profile("cpu", ROOT / "params"), P.list_notebooks(ROOT / "notebooks"))["04_cbam"]}
    names = p["ferplus_tables"].get(title)
    if names is None:
        raise SystemExit(f"error: the cpu profile has no FER+ table {title!r}; it has {sorted(p['ferplus_tables'])}")
    if sorted(folders) != sorted(names):
        raise SystemExit(f"error: table {title!r} compares {names}; got folders for {sorted(folders)}")
    ferplus = data.load_optional("ferplus", "auto", stand_in=False, synthetic_per_class=300, seed=p["seed"])
    if ferplus is None:
        raise SystemExit("error: FER+ (fer2013new.csv and fer2013.csv) not found: set FER_DATA_DIR (docs/data.md)")
    kw = dict(max_per_class=p["ferplus_max_per_class"], val_fraction=p["val_fraction"], seed=p["seed"])
    checksum = experiments.prepare(ferplus, **kw).checksum
    for name, folder in folders.items():
        scored_on = runs.read_metrics(folder)["headline"].get("data_checksum")
        if scored_on != checksum:
            raise SystemExit(f"error: {folder} ({name}) was scored on data {str(scored_on)[:12]}, the profile's split "
                             f"is {checksum[:12]}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, folder in folders.items():
            (Path(tmp) / name).symlink_to(Path(folder).resolve(), target_is_directory=True)
        return experiments.study_c_settings_tables({title: names}, ferplus, tmp, runs=p["ferplus_runs"],
                                                   train_config=p["ferplus_train_config"],
                                                   model_names=p["study_c_models"], **kw)[title]


if __name__ == "__main__":
    if len(sys.argv) < 5 or not all("=" in a for a in sys.argv[3:]):
        sys.exit(__doc__)
    table = settings_table(sys.argv[1], dict(a.split("=", 1) for a in sys.argv[3:]))
    table.to_csv(sys.argv[2])
    print(table.to_string())
