"""Start a command through the sandbox launcher for real, as the gate does: the tests of
the sandbox share this one way to do it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from evolution.sandbox.enter import parse_status

# The head of a script the tests run inside a sandbox (dedented before use): each try
# says whether the sandbox let it through.
ATTEMPT = """
    import json, os, sys
    def attempt(action):
        try:
            action()
            return "allowed"
        except OSError:
            return "blocked"
"""

LAUNCHER = Path(__file__).resolve().parent.parent / "evolution" / "sandbox" / "enter.py"


def launch(plan: dict[str, Any], argv: list[str]) -> tuple[subprocess.CompletedProcess[str], dict]:
    """Run `argv` inside the sandbox `plan` describes; the finished process and what the
    launcher reported on its status channel."""
    status_read, status_write = os.pipe()
    plan = {**plan, "status_fd": status_write}
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(LAUNCHER), json.dumps(plan), "--", *argv],
        capture_output=True, text=True, pass_fds=(status_write,), timeout=60, check=False,
    )  # fmt: skip
    os.close(status_write)
    with os.fdopen(status_read, "rb") as handle:
        return done, parse_status(handle.read())
