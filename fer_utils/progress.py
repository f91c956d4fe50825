"""Progress lines from inside a notebook to the runner's console.

``report(message)`` appends one line to the file named by ``$FER_PROGRESS_FILE`` (the runner sets
it for each notebook and shows new lines as they come); without the variable it does nothing.
No TensorFlow import, no side effects at import.
"""

from __future__ import annotations

import datetime as _dt
import os

ENV_VAR = "FER_PROGRESS_FILE"


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
