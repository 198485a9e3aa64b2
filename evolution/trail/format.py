"""The audit trail's format: every key Ratchet writes into git, and how it is written and
read.

Git is the audit trail. Each gate, revert, baseline, proposal and factory commit ends
with a block of `Key: value` trailers (`git interpret-trailers` reads them too), and
each rejection or validation note under refs/notes/evolve ends with one. This module is
the format's single owner: `audit` composes messages and notes with `block`, `trail`
reads them back with `parse`, and nothing else spells a key.
"""

from __future__ import annotations

from collections.abc import Iterable

# The proposal, written by the proposer on its own commit.
PROPOSAL = "Evolve-Proposal"
PROPOSER = "Evolve-Proposer"
MODEL = "Evolve-Model"
GOAL = "Evolve-Goal"
COST_USD = "Evolve-Cost-USD"
TOKENS = "Evolve-Tokens"
PROMPT_SHA256 = "Evolve-Prompt-SHA256"
# The verdict, written by the gate, the baseline record and the safety net.
VERDICT = "Evolve-Verdict"
TESTED_TREE = "Evolve-Tested-Tree"
BASELINE = "Evolve-Baseline"
TESTS = "Evolve-Tests"
FLAKY = "Evolve-Flaky"
SANDBOX = "Evolve-Sandbox"
REGRESSED = "Evolve-Regressed"
REVERTS = "Evolve-Reverts"
JUDGED_AT = "Evolve-Judged-At"
# The safety net's incidents: what it found and left for a person (see incident_value).
INCIDENT_KEY = "Evolve-Incident"
# The factory's commits of deploy/.
FACTORY_BUILD = "Factory-Build"

ACCEPTED, REJECTED, REVERTED = "accepted", "rejected", "reverted"
BASELINE_RECORD, VALIDATED, FACTORY = "baseline", "validated", "factory"
INCIDENT = "incident"  # a safety-net note: a regression on main that a person must act on
VERDICTS = (ACCEPTED, REJECTED, REVERTED, BASELINE_RECORD, VALIDATED, FACTORY, INCIDENT)

NOTES_REF = "refs/notes/evolve"
REJECTED_PREFIX = "refs/evolve/rejected/"

Trailers = dict[str, list[str]]


def block(pairs: Iterable[tuple[str, str]]) -> str:
    """The trailer block: one `Key: value` line per pair with a value, in order."""
    return "\n".join(f"{key}: {value}" for key, value in pairs if value != "")


def parse(text: str) -> Trailers:
    """Trailers from the last paragraph of `text` whose lines are all `Key: value`."""
    paragraphs = [p for p in text.strip().split("\n\n") if p.strip()]
    if not paragraphs:
        return {}
    found: Trailers = {}
    for line in paragraphs[-1].splitlines():
        key, sep, value = line.partition(": ")
        if not sep or " " in key or not key:
            return {}
        found.setdefault(key, []).append(value.strip())
    return found


def parse_lines(text: str) -> Trailers:
    """Trailers as git prints them with `%(trailers:only,unfold)`: one per line."""
    found: Trailers = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def last(trailers: Trailers, key: str, default: str = "") -> str:
    values = trailers.get(key)
    return values[-1] if values else default


def tests_value(tests_run: int, passed: int) -> str:
    return f"{tests_run} run, {passed} passed"


def passed_of(tests: str) -> int | None:
    """M from a `TESTS` value "N run, M passed"."""
    try:
        return int(tests.split(",")[1].split()[0]) if tests else None
    except (IndexError, ValueError):
        return None


def flaky_value(flaky: Iterable[str]) -> str:
    names = sorted(flaky)
    return ", ".join(names) if names else "none"


def flaky_count(value: str) -> int:
    return 0 if value in ("", "none") else len(value.split(", "))


def baseline_value(before: int | str | None, after: int) -> str:
    return f"{'none' if before is None else before} -> {after}"


def baseline_at(commit: str, passing: int) -> str:
    """The baseline a verdict was judged against: a rejection's or a validation's."""
    return f"{commit[:12]} ({passing} passing)"


def passing_of(value: str) -> int | None:
    """The passing count a `BASELINE` value ends with (`old -> new` or `sha (N passing)`)."""
    text = value.strip()
    if "->" in text:
        tail = text.rsplit("->", 1)[1].strip()
    elif text.endswith(" passing)"):
        tail = text.rsplit("(", 1)[1].split()[0]
    else:
        return None
    return int(tail) if tail.isdigit() else None


def incident_value(kind: str, culprit: str, tests: Iterable[str]) -> str:
    """One incident as a trailer value: `<kind> <culprit sha, or -> <node id> …`, so that
    `git log --notes=evolve` and a script can both read who broke what."""
    return " ".join([kind, culprit or "-", *tests])


def incident_of(value: str) -> tuple[str, str, list[str]]:
    """(kind, culprit sha or "", node ids) from an `INCIDENT_KEY` value."""
    parts = value.split()
    kind = parts[0] if parts else ""
    culprit = parts[1] if len(parts) > 1 and parts[1] != "-" else ""
    return kind, culprit, parts[2:]
