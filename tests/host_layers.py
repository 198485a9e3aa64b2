"""Which of the sandbox's optional layers this host gives, for tests that check one.

The layers that need mounts (a PID namespace with its own /proc, private scratch
folders) are missing where the suite itself runs inside a sandbox: Landlock refuses
mount(2) to a process in a domain, and Ratchet's gate runs this very suite in one. A
test of such a layer then skips with the reason; at the top level (CI, a developer's
machine) the layer is there and the test runs.
"""

from __future__ import annotations

import functools
import os

import pytest

from evolution.sandbox.doctor import diagnose
from evolution.sandbox.enter import GRANTED_ENV


@functools.cache
def host_layers() -> dict[str, object]:
    """What the launcher applied to a throwaway run on this host (`evolve doctor`)."""
    return diagnose().applied


def requires_layers(*names: str) -> pytest.MarkDecorator:
    missing = [name for name in names if not host_layers().get(name)]
    return pytest.mark.skipif(
        bool(missing),
        reason=f"this host's sandbox has no {', '.join(missing)} "
        "(inside another sandbox, mounts are refused)",
    )


def inside_a_sandbox() -> bool:
    """Whether this suite runs inside a Ratchet sandbox (the gate's, for its own suite):
    there /run is an empty read-only folder and no new terminal can be made, so tools a
    test needs from the user's session (a tmux server, systemd-analyze) cannot run."""
    return GRANTED_ENV in os.environ
