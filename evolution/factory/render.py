"""Render a parsed spec into the files of deploy/: a pure function of its inputs.

Same SPEC.md, same templates, same factory version: same bytes. Templates use
StrictUndefined, keep trailing newlines, and nothing here reads a clock or the host.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from evolution import __version__
from evolution.factory.cron import cron_for_every, parse_cron
from evolution.factory.spec import Spec

TEMPLATES = (
    "agent.toml.j2",
    "hardening.j2",  # imported by the units, not rendered on its own
    "service.j2",
    "tick.service.j2",
    "tick.timer.j2",
    "watchdog.service.j2",
    "watchdog.timer.j2",
    "alert.service.j2",
    "cron.j2",
    "test_seams.py.j2",
)
MANIFEST = "MANIFEST.json"
FILE_MODE = 0o644
WATCHDOG_S = 60  # the runner pings every 30 s, whatever the cadence


@dataclass(frozen=True)
class Rendered:
    files: dict[str, bytes]  # relative path -> content, MANIFEST.json included
    build_id: str
    spec_sha256: str
    templates_sha256: str


def _template_text(name: str) -> str:
    return (resources.files("evolution.factory") / "templates" / name).read_text("utf-8")


def templates_sha256() -> str:
    digest = hashlib.sha256()
    for name in TEMPLATES:
        digest.update(name.encode() + b"\0" + _template_text(name).encode() + b"\0")
    return digest.hexdigest()


def _q(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _qlist(values: list[str]) -> str:
    return "[" + ", ".join(_q(v) for v in values) + "]"


def on_calendar(expression: str) -> str:
    """The systemd OnCalendar= equivalent of a cron expression (explicit value lists)."""
    cron = parse_cron(expression)
    if cron.days_restricted and cron.weekdays_restricted:
        raise ValueError("cron restricting both day of month and day of week has no timer form")

    def values(found: frozenset[int], low: int, high: int, width: int) -> str:
        if set(found) == set(range(low, high + 1)):
            return "*"
        return ",".join(f"{v:0{width}d}" for v in sorted(found))

    names = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    weekday = (
        ",".join(names[d] for d in sorted(cron.weekdays)) + " " if cron.weekdays_restricted else ""
    )
    return (
        f"{weekday}*-{values(cron.months, 1, 12, 2)}-{values(cron.days, 1, 31, 2)} "
        f"{values(cron.hours, 0, 23, 2)}:{values(cron.minutes, 0, 59, 2)}:00"
    )


def size_in_bytes(size: str) -> int | None:
    """systemd's `2G` as bytes (base 1024, as systemd reads it); None for a percentage
    or infinity, which have no per-process equivalent."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    if size[-1:] in units:
        return int(size[:-1]) * units[size[-1]]
    return int(size) if size.isdigit() else None


def render(spec: Spec, spec_text: str) -> Rendered:
    import jinja2

    spec_sha = hashlib.sha256(spec_text.encode("utf-8")).hexdigest()
    templates_sha = templates_sha256()
    build_id = hashlib.sha256(f"{spec_sha}:{templates_sha}:{__version__}".encode()).hexdigest()[:16]
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_template_text),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    name = spec.system.name
    schedule = spec.schedule
    context: dict[str, Any] = {
        "header": (
            f"Generated from SPEC.md by the Ratchet factory {__version__}. "
            "Do not edit: change SPEC.md and run `factory build`."
        ),
        "spec": spec,
        "relax": spec.hardening.relax,
        "memory_bytes": size_in_bytes(spec.hardening.memory_max),
        "root": spec.system.root or f"/opt/{name}",
        "user": spec.system.user or name,
        "cadence": schedule.cadence_s,
        "watchdog_s": WATCHDOG_S,
        "tick_timeout_s": sum(task.timeout_s for task in spec.tasks) + 60,
        "on_calendar": on_calendar(schedule.cron) if schedule.cron else "",
        "cron_schedule": schedule.cron or cron_for_every(schedule.every_s or 0) or "",
        "q": _q,
        "qlist": _qlist,
        "b": lambda value: "true" if value else "false",
    }
    targets = {
        "agent.toml": "agent.toml.j2",
        f"systemd/{name}.service": "service.j2",
        f"systemd/{name}-tick.service": "tick.service.j2",
        f"systemd/{name}-tick.timer": "tick.timer.j2",
        f"systemd/{name}-watchdog.service": "watchdog.service.j2",
        f"systemd/{name}-watchdog.timer": "watchdog.timer.j2",
        f"systemd/{name}-alert@.service": "alert.service.j2",
        f"cron/{name}": "cron.j2",
        "test_seams.py": "test_seams.py.j2",
    }
    files = {
        path: env.get_template(template).render(**context).encode("utf-8")
        for path, template in targets.items()
    }
    manifest = {
        "generated": context["header"],
        "factory_version": __version__,
        "build_id": build_id,
        "spec_sha256": spec_sha,
        "templates_sha256": templates_sha,
        "files": {
            path: {"sha256": hashlib.sha256(data).hexdigest(), "mode": f"{FILE_MODE:o}"}
            for path, data in sorted(files.items())
        },
    }
    files[MANIFEST] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    return Rendered(files, build_id, spec_sha, templates_sha)
