"""Process helpers shared by the sandbox's kernel launcher and the notebook API's rank
launcher (`graders.notebook.parallel`), which must not import each other."""

from __future__ import annotations

import ctypes
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies, even if the parent is itself
    SIGKILLed (no cleanup handler of the parent's runs then). Call it in the child, after
    fork. A no-op elsewhere: other systems have no such call."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
