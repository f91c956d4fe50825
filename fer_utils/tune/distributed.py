"""Scale-out on KerasTuner's own distributed mode: roles, ports and start-up order (the launcher is
:mod:`fer_utils.experiments.tune_workers`).

KerasTuner runs one oracle (a single-threaded gRPC server) in the process whose ``KERASTUNER_TUNER_ID``
contains ``chief``; workers (``tuner0``, ``tuner1``, ...) ask it for trials at ``KERASTUNER_ORACLE_IP``:
``KERASTUNER_ORACLE_PORT`` and train them. Here the chief is notebook 05 itself, run by the suite's runner,
so the report is written once every trial is done; workers run the same searches in the same order
(:func:`fer_utils.experiments.tuning.work`). Each search gets its own port (``FER_TUNE_PORT_BASE`` + its
position), so a worker that finished one search can never talk to the previous search's oracle. A worker
starts a search only after the chief has prepared its folder (checked the state, moved an old search
aside) and written ``chief_ready.json`` with this launch's session id.

``python -m fer_utils.experiments.tune_workers --profile cpu --workers 2`` (:mod:`fer_utils.experiments.tune_workers`)
starts all of it on one machine. Several machines:
see the README (the reports folder must be shared storage: trial checkpoints and ``chief_ready.json`` live there).
Nothing here imports TensorFlow.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

TUNER_ID = "KERASTUNER_TUNER_ID"
ORACLE_IP = "KERASTUNER_ORACLE_IP"
ORACLE_PORT = "KERASTUNER_ORACLE_PORT"
PORT_BASE = "FER_TUNE_PORT_BASE"
SESSION = "FER_TUNE_SESSION"
#: Not "chief.json": KerasTuner saves the chief tuner's own state under that name.
CHIEF_FILE = "chief_ready.json"
#: Workers wait this long for the chief (KerasTuner's own client waits 60 minutes for the oracle too).
WAIT_SECONDS = 3600


def role() -> str:
    """``"single"`` (no distributed environment), ``"chief"`` or ``"worker"``."""
    if ORACLE_IP not in os.environ:
        return "single"
    return "chief" if "chief" in os.environ.get(TUNER_ID, "") else "worker"


def use_port(index: int) -> int | None:
    """Points KerasTuner at the port of the search at ``index`` (distributed runs only); returns it."""
    if role() == "single":
        return None
    try:
        base = int(os.environ[PORT_BASE])
    except (KeyError, ValueError) as exc:
        raise RuntimeError(f"distributed tuning needs {PORT_BASE} (the first oracle port); got "
                           f"{os.environ.get(PORT_BASE)!r}") from exc
    port = base + int(index)
    os.environ[ORACLE_PORT] = str(port)
    return port


def mark_ready(folder, port: int | None) -> None:
    """The chief's word that ``folder`` is prepared for this launch (workers wait for it)."""
    payload = {"session": os.environ.get(SESSION, ""), "port": port, "time": time.time()}
    tmp = Path(folder) / (CHIEF_FILE + ".tmp")
    tmp.write_text(json.dumps(payload))
    os.replace(tmp, Path(folder) / CHIEF_FILE)


def wait_for_chief(folder, timeout: float = WAIT_SECONDS, poll: float = 0.5) -> None:
    """Blocks until the chief has prepared ``folder`` in this launch.

    Raises:
        TimeoutError: after ``timeout`` seconds, naming the folder and the session waited for.
    """
    session = os.environ.get(SESSION, "")
    path = Path(folder) / CHIEF_FILE
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if json.loads(path.read_text()).get("session") == session:
                return
        except (OSError, ValueError):
            pass
        time.sleep(poll)
    raise TimeoutError(f"no chief prepared {folder} for session {session!r} within {timeout:.0f} s")


def free_port_range(count: int, host: str = "127.0.0.1", start: int = 0) -> int:
    """A base port such that ``count`` consecutive ports are free on ``host`` (checked by binding)."""
    for _ in range(50):
        if start:
            base = start
        else:
            with socket.socket() as s:
                s.bind((host, 0))
                base = s.getsockname()[1]
        if base + count >= 65535:
            continue
        try:
            socks = []
            for p in range(base, base + count):
                s = socket.socket()
                socks.append(s)
                s.bind((host, p))
            return base
        except OSError:
            if start:
                raise
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no {count} consecutive free ports found on {host}")


def environment(role_name: str, *, ip: str, port_base: int, session: str, worker: int = 0) -> dict:
    """The environment variables of one process of a distributed search."""
    return {TUNER_ID: "chief" if role_name == "chief" else f"tuner{int(worker)}", ORACLE_IP: ip,
            ORACLE_PORT: str(port_base), PORT_BASE: str(port_base), SESSION: session}
