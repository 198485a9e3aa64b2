"""Read the audit trail back from git alone: `evolve log` and `evolve show`.

Sources, all in the repository, none in runs/:
- gate commits on main (trailer `Evolve-Verdict: accepted`), whose tested merge commit's
  second parent is the proposal, with its own trailers (proposer, model, cost, goal…);
- baseline records (`Evolve-Verdict: baseline`) and safety-net reverts (`Evolve-Reverts`);
- factory builds (`Factory-Build`);
- rejection notes under refs/notes/evolve, attached to the rejected tip, which is kept
  under refs/evolve/rejected/<id>.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from evolution.audit import NOTES_REF, REJECTED_PREFIX
from evolution.gitrepo import GitRepo

_FIELD = "\x1f"
_RECORD = "\x1e"


@dataclass
class Entry:
    when: str
    verdict: str  # accepted | rejected | reverted | baseline | factory | validated
    proposal: str
    proposer: str
    model: str
    passed: int | None
    regressed: int
    flaky: int
    cost_usd: str
    commit: str
    subject: str
    goal: str = ""
    tokens: str = ""
    prompt_sha256: str = ""
    candidate: str = ""
    trailers: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        """One row of `evolve log`: when, verdict, proposal, proposer/model, tests, cost."""
        who = "/".join(part for part in (self.proposer, self.model) if part) or "-"
        tests = "-" if self.passed is None else f"{self.passed} passed"
        delta = f"{tests}, {self.regressed} regressed, {self.flaky} flaky"
        cost = f"${self.cost_usd}" if self.cost_usd else "-"
        return (
            f"{self.when[:16].replace('T', ' ')}  {self.verdict:<9} {self.proposal or '-':<32} "
            f"{who:<20} {delta:<34} {cost:<8} {self.commit[:10]}"
        )


def parse_trailers(text: str) -> dict[str, list[str]]:
    """Trailers from the last paragraph of `text` whose lines are all `Key: value`."""
    paragraphs = [p for p in text.strip().split("\n\n") if p.strip()]
    if not paragraphs:
        return {}
    found: dict[str, list[str]] = {}
    for line in paragraphs[-1].splitlines():
        key, sep, value = line.partition(": ")
        if not sep or " " in key or not key:
            return {}
        found.setdefault(key, []).append(value.strip())
    return found


def last_value(trailers: dict[str, list[str]], key: str, default: str = "") -> str:
    values = trailers.get(key)
    return values[-1] if values else default


def _passed(trailers: dict[str, list[str]]) -> int | None:
    tests = last_value(trailers, "Evolve-Tests")  # "N run, M passed"
    try:
        return int(tests.split(",")[1].split()[0]) if tests else None
    except (IndexError, ValueError):
        return None


def _flaky_count(trailers: dict[str, list[str]]) -> int:
    value = last_value(trailers, "Evolve-Flaky", "none")
    return 0 if value in ("", "none") else len(value.split(", "))


def _log(repo: GitRepo, *args: str) -> list[list[str]]:
    fmt = _FIELD.join(["%H", "%cI", "%s", "%(trailers:only,unfold)", "%N"]) + _RECORD
    out = repo.out("log", f"--format={fmt}", f"--notes={NOTES_REF}", *args, strip=False)
    return [record.lstrip("\n").split(_FIELD) for record in out.split(_RECORD) if record.strip()]


def _proposal_trailers(repo: GitRepo, commits: list[str]) -> dict[str, dict[str, list[str]]]:
    if not commits:
        return {}
    found = {}
    for sha, _when, _subject, trailers, _note in _log(repo, "--no-walk=unsorted", *commits):
        found[sha] = parse_trailers(trailers)
    return found


def _entry(
    verdict: str,
    sha: str,
    when: str,
    subject: str,
    own: dict[str, list[str]],
    proposal: dict[str, list[str]],
    candidate: str = "",
) -> Entry:
    merged = {**proposal, **own}
    regressed = last_value(own, "Evolve-Regressed")
    return Entry(
        when=when,
        verdict=verdict,
        proposal=last_value(merged, "Evolve-Proposal"),
        proposer=last_value(merged, "Evolve-Proposer"),
        model=last_value(merged, "Evolve-Model"),
        passed=_passed(own),
        regressed=len(regressed.split()) if regressed else 0,
        flaky=_flaky_count(own),
        cost_usd=last_value(merged, "Evolve-Cost-USD"),
        commit=sha,
        subject=subject,
        goal=last_value(merged, "Evolve-Goal"),
        tokens=last_value(merged, "Evolve-Tokens"),
        prompt_sha256=last_value(merged, "Evolve-Prompt-SHA256"),
        candidate=candidate,
        trailers=merged,
    )


def _main_entries(repo: GitRepo, main_ref: str) -> list[Entry]:
    rows = _log(repo, "--first-parent", main_ref)
    gate_candidates: dict[str, str] = {}
    for sha, _when, _subject, trailers, _note in rows:
        if last_value(parse_trailers(trailers), "Evolve-Verdict") == "accepted":
            candidate = repo.resolve_commit(f"{sha}^1^2")
            if candidate:
                gate_candidates[sha] = candidate
    proposals = _proposal_trailers(repo, sorted(set(gate_candidates.values())))
    entries = []
    for sha, when, subject, trailers, note in rows:
        own = parse_trailers(trailers)
        verdict = last_value(own, "Evolve-Verdict")
        if last_value(own, "Evolve-Reverts"):
            verdict = "reverted"
        elif last_value(own, "Factory-Build"):
            verdict = verdict or "factory"
        elif not verdict and note:
            noted = parse_trailers(note)
            if last_value(noted, "Evolve-Verdict") == "validated":
                entries.append(_entry("validated", sha, when, subject, noted, own))
            continue
        if not verdict:
            continue
        candidate = gate_candidates.get(sha, "")
        entries.append(
            _entry(verdict, sha, when, subject, own, proposals.get(candidate, {}), candidate)
        )
    return entries


def _rejections(repo: GitRepo) -> list[Entry]:
    listing = repo.out("notes", f"--ref={NOTES_REF}", "list", ok=(0, 1))
    targets = [line.split()[1] for line in listing.splitlines() if len(line.split()) == 2]
    if not targets:
        return []
    entries = []
    for sha, when, subject, trailers, note in _log(repo, "--no-walk=unsorted", *targets):
        noted = parse_trailers(note)
        if last_value(noted, "Evolve-Verdict") != "rejected":
            continue
        judged = last_value(noted, "Evolve-Judged-At", when)
        entry = _entry("rejected", sha, judged, subject, noted, parse_trailers(trailers), sha)
        entry.trailers["Evolve-Note"] = [note.strip()]
        entries.append(entry)
    return entries


def _when(entry: Entry) -> datetime:
    try:
        return datetime.fromisoformat(entry.when).astimezone(UTC)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


def read_trail(
    repo: GitRepo,
    main_ref: str,
    *,
    verdict: str | None = None,
    since: datetime | None = None,
    limit: int | None = None,
) -> list[Entry]:
    """Every recorded event, newest first."""
    entries = _main_entries(repo, main_ref) + _rejections(repo)
    entries.sort(key=_when, reverse=True)
    if verdict:
        entries = [e for e in entries if e.verdict == verdict]
    if since:
        entries = [e for e in entries if _when(e) >= since]
    return entries[:limit] if limit else entries


def rejected_refs(repo: GitRepo) -> dict[str, str]:
    out = repo.out("for-each-ref", "--format=%(objectname) %(refname)", REJECTED_PREFIX)
    found = {}
    for line in out.splitlines():
        sha, ref = line.split(" ", 1)
        found[ref.removeprefix(REJECTED_PREFIX)] = sha
    return found
