"""A stage runner ends when the engine that started it ends, and takes its kernel with it.

The engine may die without a chance to clean up (SIGKILL, the OOM killer). Its children then watch
it instead: on Linux the kernel sends the runner SIGTERM when its parent dies (`PR_SET_PDEATHSIG`),
elsewhere a thread polls the parent pid. SIGTERM becomes `SystemExit`, so papermill's own cleanup
shuts the notebook's kernel down instead of leaving it orphaned.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

# The engine names itself here for the runners it starts; by hand (no engine) nothing is watched.
ENGINE_PID_ENV = "REPROML_ENGINE_PID"
POLL_S = 1.0  # how often the portable watcher looks at its parent
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _terminate(signum, frame) -> None:
    raise SystemExit(128 + signum)


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(POLL_S)
    os.kill(os.getpid(), signal.SIGTERM)


def signal_on_parent_death(signum: int) -> bool:
    """Ask Linux to send `signum` to this process when its parent ends; False where it cannot (not Linux).

    The request survives `exec`, so a launcher can make it for the program it becomes.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def die_with_engine() -> None:
    """Arrange for this process to end (cleanly, through SIGTERM) when the engine that started it ends.

    Does nothing unless `$REPROML_ENGINE_PID` names the parent, so a runner started by hand, or by
    Pachyderm's worker, is left alone. If the engine is already gone, exits at once.
    """
    engine = os.environ.get(ENGINE_PID_ENV, "")
    if not engine.isdigit():
        return
    signal.signal(signal.SIGTERM, _terminate)
    watched = signal_on_parent_death(signal.SIGTERM)
    if os.getppid() != int(engine):  # the engine died before the line above took effect
        raise SystemExit(128 + signal.SIGTERM)
    if not watched:
        threading.Thread(target=_watch, args=(int(engine),), name="reproml-lifeline", daemon=True).start()
