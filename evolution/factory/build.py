"""`factory build | plan | check`: deploy/ as disposable output that refuses hand-edits.

Each generated file is classified against MANIFEST.json (what the factory last wrote)
and against a fresh render:
- clean: as last written, and what a build would write now;
- stale: as last written, but the spec or the templates changed since;
- drifted: changed by hand since the last build;
- missing: the manifest (or a build) has it, the disk does not;
- untracked: on disk in deploy/, but no build ever wrote it.
A build refuses drifted and untracked files (their content would be lost) unless
`--discard-drift`, which first saves them as a patch under runs/.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agent.atomicio import atomic_write_text
from agent.errors import Refused
from evolution.factory.render import FILE_MODE, MANIFEST, Rendered, render
from evolution.factory.spec import ParsedSpec, parse_spec


@dataclass(frozen=True)
class FileState:
    path: str
    status: str  # clean | stale | drifted | missing | untracked


def _on_disk(out: Path) -> dict[str, bytes]:
    if not out.is_dir():
        return {}
    return {
        str(path.relative_to(out)): path.read_bytes()
        for path in sorted(out.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def _recorded(disk: dict[str, bytes]) -> dict[str, str]:
    try:
        manifest = json.loads(disk.get(MANIFEST, b"{}"))
        return {path: entry["sha256"] for path, entry in manifest.get("files", {}).items()}
    except (ValueError, AttributeError, KeyError, TypeError):
        return {}


def classify(out: Path, rendered: Rendered) -> list[FileState]:
    disk = _on_disk(out)
    recorded = _recorded(disk)
    states = []
    for path in sorted(set(recorded) | set(rendered.files) | set(disk)):
        if path == MANIFEST:
            continue
        content = disk.get(path)
        if content is None:
            status = "missing"
        elif path not in recorded:
            status = "untracked"
        elif hashlib.sha256(content).hexdigest() != recorded[path]:
            status = "drifted"
        elif rendered.files.get(path) != content:
            status = "stale"
        else:
            status = "clean"
        states.append(FileState(path, status))
    if disk.get(MANIFEST) != rendered.files.get(MANIFEST):
        # The manifest names the spec and templates it was built from: a change of
        # SPEC.md that no generated file shows (its prose) still makes deploy/ stale,
        # and the gate refuses a deploy/ that is not byte for byte the build.
        states.append(FileState(MANIFEST, "missing" if MANIFEST not in disk else "stale"))
    return states


def diff(out: Path, rendered: Rendered) -> str:
    disk = _on_disk(out)
    chunks = []
    for path in sorted(set(disk) | set(rendered.files)):
        old = disk.get(path, b"").decode("utf-8", errors="replace")
        new = rendered.files.get(path, b"").decode("utf-8", errors="replace")
        if old != new:
            chunks.extend(
                difflib.unified_diff(
                    old.splitlines(keepends=True),
                    new.splitlines(keepends=True),
                    fromfile=f"a/{out.name}/{path}" if path in disk else "/dev/null",
                    tofile=f"b/{out.name}/{path}" if path in rendered.files else "/dev/null",
                )
            )
    return "".join(chunks)


class DriftRefused(Refused):
    def __init__(self, states: list[FileState]) -> None:
        self.states = states
        names = ", ".join(f"{s.path} ({s.status})" for s in states)
        super().__init__(
            f"refused: hand-edited files in deploy/: {names}",
            hint="carry the change into SPEC.md, or pass --discard-drift to save it as a "
            "patch under runs/ and rebuild",
            details={"states": [s.__dict__ for s in states]},
        )


@dataclass
class BuildReport:
    build_id: str
    out: str
    written: list[str]
    states: list[dict[str, str]]
    saved_patch: str = ""
    changed: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def load(spec_path: Path) -> Rendered:
    return render_parsed(parse_spec(spec_path))


def render_parsed(parsed: ParsedSpec) -> Rendered:
    return render(parsed.spec, parsed.text)


def build(spec_path: Path, out: Path, runs: Path, *, discard_drift: bool = False) -> BuildReport:
    rendered = load(spec_path)
    states = classify(out, rendered)
    dirty = [s for s in states if s.status in ("drifted", "untracked")]
    saved = ""
    if dirty and not discard_drift:
        raise DriftRefused(dirty)
    if dirty:
        patch = runs / "factory" / f"drift-{rendered.build_id}.patch"
        atomic_write_text(patch, diff(out, rendered))
        saved = str(patch)
    changed = _on_disk(out) != rendered.files
    if changed:
        _swap_in(out, rendered)
    report = BuildReport(
        build_id=rendered.build_id,
        out=str(out),
        written=sorted(rendered.files) if changed else [],
        states=[asdict(s) for s in classify(out, rendered)],
        saved_patch=saved,
        changed=changed,
    )
    atomic_write_text(
        runs / "factory" / f"build-{rendered.build_id}.json",
        json.dumps(report.to_json(), indent=2, sort_keys=True) + "\n",
    )
    return report


def _swap_in(out: Path, rendered: Rendered) -> None:
    """Render into a sibling temporary folder, then rename it into place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        for path, data in rendered.files.items():
            target = staging / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            os.chmod(target, FILE_MODE)
        os.chmod(staging, 0o755)
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.rename(out, old)
        os.rename(staging, out)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
