"""Progress lines from inside a notebook to the runner's console, and the runner's stop time.

``report(message)`` appends one line to the file named by ``$FER_PROGRESS_FILE`` (the runner sets
it for each notebook and shows new lines as they come); without the variable it does nothing.

``check_stop(where)`` is called at every checkpoint boundary (a classifier's epoch after its backup is written, a
KerasTuner trial after it is recorded, a GAN checkpoint, a model about to start): past the time in ``$FER_STOP_AT``
(seconds since the epoch; the runner's ``--stop-after HOURS``), or once the file named by ``$FER_STOP_FILE`` exists
(the runner's ``reports/<profile>/STOP``: stop now, cleanly), it raises :class:`StopRequested`, so a run ends
where the same command (or ``--resume-from``) continues it. No TensorFlow import, no side effects at import.
"""

from __future__ import annotations

import datetime as _dt
import os

ENV_VAR = "FER_PROGRESS_FILE"
STOP_ENV = "FER_STOP_AT"
STOP_FILE_ENV = "FER_STOP_FILE"


class StopRequested(RuntimeError):
    """The runner's ``--stop-after`` time has passed; raised at a checkpoint boundary."""


def report(message: str) -> None:
    """Append ``message`` (one line, timestamped) to ``$FER_PROGRESS_FILE``; never raises."""
    path = os.environ.get(ENV_VAR)
    if not path:
        return
    line = " ".join(str(message).split())
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"{_dt.datetime.now().strftime('%H:%M:%S')} {line}\n")
    except OSError:
        pass


def stop_due() -> bool:
    """Whether ``$FER_STOP_AT`` is set and has passed (a malformed value is ignored), or ``$FER_STOP_FILE`` exists."""
    import time

    if os.environ.get(STOP_FILE_ENV) and os.path.exists(os.environ[STOP_FILE_ENV]):
        return True
    try:
        return time.time() >= float(os.environ[STOP_ENV])
    except (KeyError, ValueError):
        return False


def check_stop(where: str) -> None:
    """Raise :class:`StopRequested` past ``$FER_STOP_AT``, naming the checkpoint it stopped at."""
    if stop_due():
        message = f"stopped as asked (--stop-after or the STOP file) after {where}; everything up to there is saved"
        report(message)
        raise StopRequested(message)
