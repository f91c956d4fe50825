"""Run folders and reproducibility records.

This module owns what every notebook records next to its results: the notebook's run folder,
seeding (one seed drives Python, NumPy and TensorFlow), the reproducibility record (versions,
seed, data checksum, every parameter of the notebook) that goes into ``metrics.json`` (written
by :mod:`fer_utils.runs`), what the machine is (CPU flags and kind, cumulative CPU times), and the banners a
report shows (``SYNTHETIC DATA``, the data card).
Nothing happens at import time.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import random
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

_PACKAGES = ("tensorflow", "keras", "keras_tuner", "numpy", "pandas", "scipy", "statsmodels", "sklearn",
             "seaborn", "matplotlib", "papermill")


def set_seed(seed: int, *, tensorflow: bool = True) -> int:
    """Seed Python, NumPy and (if imported or requested) Keras/TensorFlow with one number.

    Keras' ``set_random_seed`` also seeds TensorFlow; op determinism is not forced because it
    slows CPU training and is unavailable for some GPU kernels (recorded in the metadata).
    """
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    if tensorflow:
        import keras

        keras.utils.set_random_seed(seed)
    return seed


# ----------------------------------------------------------------------------- the machine

def cpu_flags() -> set:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none: not Linux, no procfs)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_times() -> list:
    """This machine's cumulative CPU times from ``/proc/stat`` (user, nice, system, idle, iowait, irq, softirq, steal);
    empty where there is no ``/proc/stat``."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return []
    return [int(v) for v in fields[1:9]] if fields and fields[0] == "cpu" and len(fields) >= 9 else []


def cpu_kind() -> str:
    """This machine's CPU as speeds depend on it: cores (those this process may run on, "2 of 8 cores" when its
    affinity allows fewer than the machine's; a cgroup CPU quota is not seen), AVX2 / AVX-512 / bf16 / AMX, a oneDNN
    limit."""
    flags = cpu_flags()
    kind = ("AMX" if "amx_bf16" in flags else "AVX-512 + bf16" if "avx512_bf16" in flags
            else "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "unknown ISA")
    limit = os.environ.get("ONEDNN_MAX_CPU_ISA")
    total = os.cpu_count() or 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else total
    cores = f"{usable} cores" if usable >= total else f"{usable} of {total} cores"
    return f"{cores}, {kind}" + (f", oneDNN limited to {limit}" if limit else "")


def versions() -> dict:
    """Versions of Python and the stack's packages that are installed (not imported eagerly)."""
    from importlib import metadata

    names = {"sklearn": "scikit-learn", "keras_tuner": "keras-tuner"}
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in _PACKAGES:
        try:
            out[pkg] = metadata.version(names.get(pkg, pkg))
        except metadata.PackageNotFoundError:
            if pkg == "tensorflow":
                try:
                    out[pkg] = metadata.version("tensorflow-cpu")
                except metadata.PackageNotFoundError:
                    pass
    return out


def run_folder(run_dir, notebook: str = "adhoc", reports_dir="") -> Path:
    """Create (if needed) and return a notebook's run folder.

    The runner always passes ``run_dir``. ``run_dir=""`` (a notebook opened by hand) gives a
    new ``<reports_dir>/adhoc/<notebook>/<timestamp>`` folder (``reports_dir`` defaults to the
    project's ``reports/``), so a second run by hand never overwrites the first one's results.
    """
    if run_dir:
        path = Path(run_dir)
    else:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        root = Path(reports_dir) if reports_dir else Path(__file__).resolve().parent.parent / "reports"
        path = root / "adhoc" / notebook / stamp
    path.mkdir(parents=True, exist_ok=True)
    return path


class Timer:
    """Wall-clock timer: ``t = Timer(); ...; t.seconds``."""

    def __init__(self):
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        """Seconds since creation."""
        return time.perf_counter() - self.start


def _declared_parameters(notebook: str) -> dict:
    """The ``parameters`` cell of ``notebooks/<notebook>.ipynb``: ``{name: default}``."""
    from fer_utils import params

    return params.notebook_parameters(Path(__file__).resolve().parent.parent / "notebooks" / f"{notebook}.ipynb")


def notebook_parameters(namespace: dict, notebook: str) -> dict:
    """Every parameter a notebook declares, with the value it runs with (for ``metrics.json``).

    Args:
        namespace: the notebook's ``globals()``.
        notebook: the notebook's stem, e.g. ``"03_baselines"``; its ``parameters`` cell is read from
            ``notebooks/<notebook>.ipynb`` to know which names are parameters.
    """
    return {k: namespace.get(k, v) for k, v in _declared_parameters(notebook).items()}


def parameters_html(parameters: dict, defaults: dict) -> str:
    """The parameters a run uses, whole values, marking those that differ from the notebook's ``defaults``; folded
    under a one-line summary (a report shows its results first)."""
    import html

    changed = [k for k, v in parameters.items() if v != defaults.get(k)]
    rows = "".join(f"<tr><td><code>{html.escape(k)}</code></td><td><code>{html.escape(repr(v))}</code></td>"
                   f"<td>{'yes' if k in changed else ''}</td></tr>" for k, v in parameters.items())
    return (f"<details><summary><b>Parameters</b>: {len(parameters)}, {len(changed)} set by the run "
            f"({html.escape(', '.join(changed))})</summary><table style='text-align:left'><tr><th>parameter</th>"
            f"<th>value</th><th>set by the run</th></tr>{rows}</table></details>")


class NotebookStart(NamedTuple):
    """What :func:`start` gives a notebook: ``run, parameters, ds, timer = artifacts.start(globals(), NAME)``."""

    run: Path  #: the notebook's run folder
    parameters: dict  #: every declared parameter with the value it runs with
    dataset: object  #: the dataset found (a :class:`fer_utils.data.FERDataset`), or the synthetic default
    timer: Timer  #: started before anything else, for the report's wall time


def start(namespace: dict, notebook: str, *, tensorflow: bool = True) -> NotebookStart:
    """The first call of every notebook: quiet warnings, one seed for everything, the run folder, the parameters
    (shown once, as a table), the dataset (its banner shown: a data card, or SYNTHETIC DATA in red).

    Reads ``seed``, ``run_dir``, ``reports_dir``, ``dataset``, ``data_dir`` and ``synthetic_per_class`` (and
    ``strict`` where declared) from the notebook's ``globals()``. ``tensorflow=False`` seeds without importing it
    (notebook 01 trains nothing).
    """
    import warnings

    from IPython.display import HTML, display

    from fer_utils import data

    timer = Timer()
    quiet_warnings()
    seed = set_seed(namespace["seed"], tensorflow=tensorflow)
    run = run_folder(namespace.get("run_dir", ""), notebook, namespace.get("reports_dir", ""))
    defaults = _declared_parameters(notebook)
    parameters = {k: namespace.get(k, v) for k, v in defaults.items()}
    display(HTML(parameters_html(parameters, defaults)))
    extra = {"strict": parameters["strict"]} if "strict" in parameters else {}
    with warnings.catch_warnings(record=True) as caught:  # said as plain lines, not with this module's source line
        warnings.simplefilter("always")
        ds = data.load_dataset(parameters["dataset"], parameters["data_dir"],
                               synthetic_per_class=parameters["synthetic_per_class"], seed=seed, **extra)
    for w in caught:
        print(f"{w.category.__name__}: {w.message}")
    show_banner(ds)
    return NotebookStart(run, parameters, ds, timer)


#: What the seed guarantees, recorded in every run's metadata.
DETERMINISM = ("Same seed, same machine, same package versions, CPU: identical history.csv and predictions.npz "
               "(shuffling, weight initialisation and augmentation are seeded; augmentation runs in order). "
               "Not guaranteed across machines or CPU types (float rounding of oneDNN kernels differs), on GPUs "
               "(non-deterministic kernels), or with a different batch size or number of devices.")


def run_metadata(seed: int, dataset=None, params: dict | None = None, **extra) -> dict:
    """The reproducibility record of a run: seed, data, versions, parameters, time."""
    meta = {"seed": int(seed), "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "versions": versions(), "params": params or {}, "determinism": DETERMINISM}
    if dataset is not None:
        meta["data"] = dataset.describe() if hasattr(dataset, "describe") else dataset
        meta["synthetic_data"] = bool(getattr(dataset, "is_synthetic", False))
    meta.update(extra)
    return meta


SYNTHETIC_INDEX_BANNER = ("SYNTHETIC DATA: at least one report below ran on the built-in synthetic faces, "
                          "not a real dataset.")
SYNTHETIC_BANNER = ("SYNTHETIC DATA: no real dataset was found, so this report uses the built-in procedurally "
                    "drawn faces. Its numbers say nothing about FER-2013. Set FER_DATA_DIR or data_dir (README: Data).")


def quiet_warnings():
    """Silence library deprecation chatter in reports (fer_utils' own warnings still show)."""
    import warnings

    for cat in (DeprecationWarning, FutureWarning, PendingDeprecationWarning):
        warnings.filterwarnings("ignore", category=cat, module=r"(?!fer_utils)")


def _all_synthetic(desc: dict) -> bool:
    return bool(desc.get("synthetic_rows")) and desc.get("synthetic_rows") == desc.get("n")


def banner_html(dataset) -> str:
    """HTML for the data banner of a report: a loud red SYNTHETIC DATA box, or a data card."""
    desc = dataset.describe() if hasattr(dataset, "describe") else dataset
    synthetic = _all_synthetic(desc)
    card = (f"<b>dataset</b> {desc['name']} &nbsp; <b>path</b> {desc['path'] or '(generated)'} &nbsp; "
            f"<b>rows</b> {desc['n']:,} &nbsp; <b>splits</b> {desc['splits']} &nbsp; "
            f"<b>sha256</b> <code>{desc['checksum'][:16]}</code>")
    if synthetic:
        return ("<div style='background:#b00020;color:white;padding:14px;font-size:20px;font-weight:bold;"
                f"border-radius:6px'>&#9888; {SYNTHETIC_BANNER}</div><div style='padding:6px'>{card}</div>")
    return f"<div style='background:#e8f0fe;padding:10px;border-radius:6px'>{card}</div>"


def show_banner(dataset):
    """Display the data banner in a notebook (also prints it, so text renderings carry it)."""
    from IPython.display import HTML, display

    desc = dataset.describe() if hasattr(dataset, "describe") else dataset
    if _all_synthetic(desc):
        print("!" * 20, SYNTHETIC_BANNER, "!" * 20)
    display(HTML(banner_html(dataset)))
