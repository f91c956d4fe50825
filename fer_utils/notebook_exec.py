"""Executing one notebook with papermill: quietly, with progress on the console, rendered to HTML.

This module owns how a notebook is run and shown while it runs:

- the kernel talks to papermill over IPC sockets in a private temporary folder (not TCP), so the
  kernel's "running over TCP without encryption" warning never appears;
- each code cell prints one line when it starts (``cell 5/14: results = experiments.run_models(...``),
  and every line the notebook reports through :mod:`fer_utils.progress` (current model, epoch and
  metrics) is shown under it as it arrives;
- known harmless start-up lines (TensorFlow's oneDNN / CPU-feature notices, CUDA factory
  registration, the transport warning) are removed from the executed notebook's stderr outputs
  before the HTML is rendered; any other warning or error stays visible.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import time
from pathlib import Path

from fer_utils import progress

#: Lines that are start-up noise, never information for a reader of a report.
HARMLESS_STDERR = re.compile(
    r"(oneDNN custom operations are on|cpu_feature_guard|This TensorFlow binary is optimized|"
    r"To enable the following instructions:|rebuild TensorFlow with the appropriate compiler flags|"
    r"All log messages before absl::InitializeLog\(\) is called|Unable to register cu(DNN|FFT|BLAS) factory|"
    r"TF-TRT Warning|Kernel is running over TCP without encryption|computation placer already registered|"
    r"Could not find cuda drivers|successful NUMA node read)")
#: Environment every kernel gets (set only when the user has not set them).
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "GRPC_VERBOSITY": "ERROR", "KERAS_BACKEND": "tensorflow"}


def filter_stderr(text: str) -> str:
    """``text`` without the lines that are known start-up noise (other lines kept in order)."""
    return "".join(line for line in text.splitlines(keepends=True) if not HARMLESS_STDERR.search(line))


class filtered_stderr:
    """Context manager: this process's file descriptor 2, and so every kernel or worker it starts, passes through
    :func:`filter_stderr` on its way to the console.

    TensorFlow prints its oneDNN notice from C++ at import time, before absl logging is set up, whatever
    ``TF_CPP_MIN_LOG_LEVEL`` says (seen on CPUs where oneDNN is on by default); only the file descriptor can be
    filtered. Every other line reaches the console unchanged, in order.
    """

    def __enter__(self):
        import sys

        sys.stderr.flush()
        self._saved = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        self._pump = threading.Thread(target=self._copy, args=(read_end,), daemon=True)
        self._pump.start()
        return self

    def _copy(self, read_end):
        with os.fdopen(read_end, "rb") as source:
            for line in source:
                if not HARMLESS_STDERR.search(line.decode("utf-8", errors="replace")):
                    os.write(self._saved, line)

    def __exit__(self, *exc):
        import sys

        sys.stderr.flush()
        os.dup2(self._saved, 2)  # closes this process's write end; the pump ends when the children's close too
        self._pump.join(timeout=5)
        os.close(self._saved)
        return False


def clean_outputs(nb) -> int:
    """Drop harmless start-up lines from a notebook's stderr outputs (in place); returns lines dropped."""
    dropped = 0
    for cell in nb.get("cells", []):
        kept = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                text = "".join(out["text"]) if isinstance(out["text"], list) else out["text"]
                clean = filter_stderr(text)
                dropped += text.count("\n") - clean.count("\n")
                if not clean.strip():
                    continue
                out["text"] = clean
            kept.append(out)
        if "outputs" in cell:
            cell["outputs"] = kept
    return dropped


def _first_line(source) -> str:
    text = "".join(source) if isinstance(source, list) else str(source)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    line = lines[0] if lines else ""
    return line if len(line) <= 90 else line[:87] + "..."


def _engine(say, ipc_dir: str):
    """A papermill engine that announces each code cell and runs the kernel over IPC."""
    from jupyter_client.manager import KernelManager
    from papermill.engines import NBClientEngine

    class IPCKernelManager(KernelManager):
        def __init__(self, **kwargs):
            kwargs.setdefault("transport", "ipc")
            kwargs.setdefault("ip", os.path.join(ipc_dir, "kernel"))
            super().__init__(**kwargs)

    class ProgressEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, **kwargs):
            code = [i for i, c in enumerate(nb_man.nb.cells) if c.cell_type == "code"]
            original = nb_man.cell_start

            def cell_start(cell, cell_index=None, **kw):
                if cell_index in code:
                    say(f"  cell {code.index(cell_index) + 1}/{len(code)}: {_first_line(cell.source)}")
                return original(cell, cell_index, **kw)

            nb_man.cell_start = cell_start
            kwargs["kernel_manager_class"] = IPCKernelManager
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)

    return ProgressEngine


class _Tail(threading.Thread):
    """Prints the lines appended to the progress file while a notebook runs."""

    def __init__(self, path: Path, say):
        super().__init__(daemon=True)
        self.path, self.say, self.stop, self.offset = path, say, threading.Event(), 0

    def poll(self):
        try:
            with open(self.path, encoding="utf-8") as f:
                f.seek(self.offset)
                chunk = f.read()
        except OSError:
            return
        complete = chunk[: chunk.rfind("\n") + 1]
        self.offset += len(complete.encode("utf-8"))
        for line in complete.splitlines():
            self.say(f"      {line}")

    def run(self):
        while not self.stop.wait(0.5):
            self.poll()
        self.poll()


def execute(notebook: Path, output: Path, parameters: dict, timeout=None, log_output: bool = False,
            say=print) -> None:
    """Run one notebook with papermill (cwd = its folder, like JupyterLab), showing progress with ``say``.

    Raises:
        Whatever papermill raises for a failing cell or a timeout (the output notebook is written anyway).
    """
    import papermill as pm
    from papermill.engines import papermill_engines

    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    with tempfile.TemporaryDirectory(prefix="fer-run-") as tmp:
        log = Path(tmp) / "progress.log"
        log.touch()
        previous = os.environ.get(progress.ENV_VAR)
        os.environ[progress.ENV_VAR] = str(log)  # the kernel inherits it
        papermill_engines.register("fer_progress", _engine(say, tmp))
        tail = _Tail(log, say)
        tail.start()
        try:
            pm.execute_notebook(str(notebook), str(output), parameters=parameters, cwd=str(notebook.parent),
                                kernel_name="python3", progress_bar=False, log_output=log_output,
                                execution_timeout=timeout, report_mode=False, engine_name="fer_progress")
        finally:
            tail.stop.set()
            tail.join(timeout=5)
            if previous is None:
                os.environ.pop(progress.ENV_VAR, None)
            else:
                os.environ[progress.ENV_VAR] = previous


def _results_first(nb):
    """A copy of ``nb`` whose headline numbers (the output of the cell tagged ``headline``) also stand as a table
    right under the title, so a reader sees the results before the steps that made them."""
    import ast
    import copy
    import html

    import nbformat

    tagged = [c for c in nb.cells if "headline" in c.get("metadata", {}).get("tags", [])]
    results = [o for c in tagged for o in c.get("outputs", []) if o.get("output_type") == "execute_result"]
    try:
        head = ast.literal_eval("".join(results[0]["data"]["text/plain"])) if results else None
    except (ValueError, SyntaxError, KeyError):
        head = None
    if not isinstance(head, dict) or not head:
        return nb
    rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td><b>{html.escape(str(v))}</b></td></tr>"
                   for k, v in head.items())
    out = copy.deepcopy(nb)
    at = 1 if out.cells and out.cells[0].cell_type == "markdown" else 0
    out.cells.insert(at, nbformat.v4.new_markdown_cell(
        f"**Results** (the headline of this run; the steps follow)\n\n<table>{rows}</table>"))
    return out


def to_html(ipynb: Path) -> Path:
    """Clean the executed notebook's start-up noise, then render it to HTML next to it (images embedded).

    The report is for readers of results, not of code: code inputs and prompts are left out (the executed
    ``.ipynb`` next to it has them, and a failing cell's traceback still shows its lines); the parameters appear
    once, as the table the notebook's first call displays.
    """
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(ipynb), as_version=4)
    if clean_outputs(nb):
        nbformat.write(nb, str(ipynb))
    exporter = HTMLExporter(template_name="lab", exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(_results_first(nb))
    out = ipynb.with_suffix(".html")
    out.write_text(body, encoding="utf-8")
    return out


def elapsed(t0: float) -> str:
    """Seconds since ``t0`` as ``12.3 s``."""
    return f"{time.perf_counter() - t0:.1f} s"
