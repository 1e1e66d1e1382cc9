"""Named steps of long operations, where the tests stop a process dead.

With MODELREG_TEST_KILL_AFTER=<step> in the environment, the process kills itself with SIGKILL right
after that step: the tests use it to prove that a kill at any point leaves either nothing or a
complete result. Unset (always, outside the tests), a step costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

KILL_VARIABLE = "MODELREG_TEST_KILL_AFTER"


def step(name: str) -> None:
    """Mark the end of step `name`."""
    if os.environ.get(KILL_VARIABLE) == name:
        os.kill(os.getpid(), signal.SIGKILL)
