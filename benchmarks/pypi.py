"""Fetching public releases from PyPI with pip, the registry's ordinary client.

Both the repair benchmark (sdists, which carry the packages' own tests) and the priors'
derivation (wheels, which carry the code of every release and need no build) read
other people's code at run time; nothing of it is committed here. Every call goes
through `pip download` or `pip index`, so pip's configuration (index, certificates,
cache) applies as it does to an install.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PIP_TIMEOUT_S = 300.0
FINAL_RELEASE = re.compile(r"^\d+(\.\d+)*$")


class FetchError(Exception):
    """pip could not list or download a release: the caller decides whether to skip it."""


def _pip(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "pip", *args, "--disable-pip-version-check"],
        capture_output=True, text=True, check=False, timeout=PIP_TIMEOUT_S,
    )
    if done.returncode != 0:
        raise FetchError(f"pip {args[0]} {' '.join(args[1:3])}: {done.stderr.strip()[-400:]}")
    return done.stdout


def final_versions(name: str) -> list[str]:
    """The package's final releases (no pre-, post- or dev-releases), oldest first."""
    out = _pip("index", "versions", name)
    listed = next((line for line in out.splitlines() if "versions:" in line), "")
    found = [v.strip() for v in listed.split(":", 1)[-1].split(",") if v.strip()]
    finals = [v for v in found if FINAL_RELEASE.match(v)]
    return sorted(set(finals), key=lambda v: tuple(int(p) for p in v.split(".")))


def download(name: str, version: str, dest: Path, *, sdist: bool) -> Path:
    """One release of `name` in `dest` (a cached copy is reused): its sdist or its wheel."""
    dest.mkdir(parents=True, exist_ok=True)
    cached = _existing(name, version, dest, sdist=sdist)
    if cached is not None:
        return cached
    kind = ["--no-binary", ":all:"] if sdist else ["--only-binary", ":all:"]
    _pip("download", "-q", "--no-deps", *kind, f"{name}=={version}", "-d", str(dest))
    found = _existing(name, version, dest, sdist=sdist)
    if found is None:
        raise FetchError(f"pip downloaded no {'sdist' if sdist else 'wheel'} of {name} {version}")
    return found


def _existing(name: str, version: str, dest: Path, *, sdist: bool) -> Path | None:
    def norm(text: str) -> str:
        return re.sub(r"[-_.]+", "_", text).lower()

    prefix = norm(f"{name}-{version}") + "_"
    for path in sorted(dest.iterdir()):
        if not path.name.endswith((".tar.gz", ".zip") if sdist else (".whl",)):
            continue
        rest = norm(path.name)
        if rest.startswith(prefix) and not rest[len(prefix)].isdigit():
            return path
    return None
