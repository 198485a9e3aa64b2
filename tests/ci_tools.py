"""Where the CI-template tests find their tools: the npm packages pinned in .ci/node
(package.json, package-lock.json), installed by `npm ci --prefix .ci/node` (.ci/run
does it first), and the programs they need on PATH. A tool that is absent skips its
test with the command that installs it: never a silent pass."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = ROOT / ".ci" / "node" / "node_modules"
INSTALL = "npm ci --prefix .ci/node"


def node_package(*parts: str) -> Path:
    """A file of an installed npm package of .ci/node, or a skip saying how to install it."""
    path = NODE_MODULES.joinpath(*parts)
    if shutil.which("node") is None:
        pytest.skip(f"node is not on PATH: install Node.js 20, then `{INSTALL}`")
    if not path.exists():
        pytest.skip(f"{path.relative_to(ROOT)} is missing: run `{INSTALL}` (.ci/run does)")
    return path


def program(name: str, install: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not on PATH: {install}")
    return found
