"""What the coding-agent tests share: a way to find an agent's processes after its run.

Tests run side by side (xdist), so "no `sleep 300` is left" would see another test's
agent. Each run is given a variable of its own instead (the agent's environment keeps
what is not a secret), and its processes are found by it.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def marker() -> dict[str, str]:
    """An environment entry that tells this run's processes from every other's."""
    return {"AGENT_TEST_MARK": uuid.uuid4().hex}


def processes_marked(mark: dict[str, str]) -> list[int]:
    """The processes still running with `mark` in their environment."""
    (name, value), = mark.items()
    needle = f"{name}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if needle in environ:
            found.append(int(entry.name))
    return found
