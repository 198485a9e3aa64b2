"""Read the audit trail back from git alone: `evolve log` and `evolve show`.

Sources, all in the repository, none in runs/:
- gate commits on main (verdict "accepted"), whose tested merge commit's second parent
  is the proposal, with its own trailers (proposer, model, cost, goal…);
- baseline records (verdict "baseline") and safety-net reverts;
- the safety net's notes on main: `validated`, and `incident` (what it left to a person);
- factory builds;
- rejection notes under refs/notes/evolve, attached to the rejected tip, which is kept
  under refs/evolve/rejected/<id>.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from agent.errors import UsageError
from evolution.gitrepo import GitRepo
from evolution.trail import format as t


@dataclass
class Entry:
    when: str
    verdict: str  # one of trailers.VERDICTS
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
    passing: int | None = None  # baseline-passing tests after the event (before, rejected)
    note: str = ""  # a rejection's or validation's note, whole
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


def _proposal_trailers(repo: GitRepo, commits: list[str]) -> dict[str, dict[str, list[str]]]:
    if not commits:
        return {}
    records = repo.log_records(t.NOTES_REF, "--no-walk=unsorted", *commits)
    return {sha: t.parse(trailers) for sha, _when, _subject, trailers, _note in records}


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
    regressed = t.last(own, t.REGRESSED)
    return Entry(
        when=when,
        verdict=verdict,
        proposal=t.last(merged, t.PROPOSAL),
        proposer=t.last(merged, t.PROPOSER),
        model=t.last(merged, t.MODEL),
        passed=t.passed_of(t.last(own, t.TESTS)),
        regressed=len(regressed.split()) if regressed else 0,
        flaky=t.flaky_count(t.last(own, t.FLAKY, "none")),
        cost_usd=t.last(merged, t.COST_USD),
        commit=sha,
        subject=subject,
        goal=t.last(merged, t.GOAL),
        tokens=t.last(merged, t.TOKENS),
        prompt_sha256=t.last(merged, t.PROMPT_SHA256),
        candidate=candidate,
        passing=t.passing_of(t.last(own, t.BASELINE)),
        trailers=merged,
    )


def _main_entries(repo: GitRepo, main_ref: str) -> list[Entry]:
    rows = repo.log_records(t.NOTES_REF, "--first-parent", main_ref)
    gate_candidates: dict[str, str] = {}
    for sha, _when, _subject, trailers, _note in rows:
        if t.last(t.parse(trailers), t.VERDICT) == t.ACCEPTED:
            candidate = repo.resolve_commit(f"{sha}^1^2")
            if candidate:
                gate_candidates[sha] = candidate
    proposals = _proposal_trailers(repo, sorted(set(gate_candidates.values())))
    entries = []
    for sha, when, subject, trailers, note in rows:
        own = t.parse(trailers)
        noted = t.parse(note) if note else {}
        if t.last(noted, t.VERDICT) == t.INCIDENT:  # beside the commit's own verdict, if any
            entry = _entry(t.INCIDENT, sha, t.last(noted, t.JUDGED_AT, when), subject, noted, own)
            entry.note = note.strip()
            entries.append(entry)
        verdict = t.last(own, t.VERDICT)
        if t.last(own, t.REVERTS):
            verdict = t.REVERTED
        elif t.last(own, t.FACTORY_BUILD):
            verdict = verdict or t.FACTORY
        elif not verdict and note:
            if t.last(noted, t.VERDICT) == t.VALIDATED:
                entry = _entry(t.VALIDATED, sha, when, subject, noted, own)
                entry.note = note.strip()
                entries.append(entry)
            continue
        if not verdict:
            continue
        candidate = gate_candidates.get(sha, "")
        entries.append(
            _entry(verdict, sha, when, subject, own, proposals.get(candidate, {}), candidate)
        )
    return entries


def _rejections(repo: GitRepo) -> list[Entry]:
    targets = repo.noted_commits(t.NOTES_REF)
    if not targets:
        return []
    entries = []
    for sha, when, subject, trailers, note in repo.log_records(
        t.NOTES_REF, "--no-walk=unsorted", *targets
    ):
        noted = t.parse(note)
        if t.last(noted, t.VERDICT) != t.REJECTED:
            continue
        judged = t.last(noted, t.JUDGED_AT, when)
        entry = _entry(t.REJECTED, sha, judged, subject, noted, t.parse(trailers), sha)
        entry.note = note.strip()
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
    if verdict is not None and verdict not in t.VERDICTS:
        raise UsageError(f"unknown verdict {verdict!r}: choose one of {', '.join(t.VERDICTS)}")
    entries = _main_entries(repo, main_ref) + _rejections(repo)
    entries.sort(key=_when, reverse=True)
    if verdict:
        entries = [e for e in entries if e.verdict == verdict]
    if since:
        entries = [e for e in entries if _when(e) >= since]
    return entries[:limit] if limit else entries


def proposal_record(repo: GitRepo, main_ref: str, proposal: str) -> dict[str, Any]:
    """One proposal's whole record (`evolve show`): its newest entry, the diff it
    proposed, and every entry that names it."""
    matches = [
        entry
        for entry in read_trail(repo, main_ref)
        if proposal in (entry.proposal, entry.commit, entry.candidate)
        or (len(proposal) >= 7 and entry.commit.startswith(proposal))
    ]
    if not matches:
        raise UsageError(f"no proposal or gate commit named {proposal!r} in the trail")
    entry = matches[0]
    diff = ""
    if entry.candidate:
        if entry.verdict == t.ACCEPTED:  # the tested merge's first parent: main before
            base = repo.resolve_commit(f"{entry.commit}^1^1") or ""
        else:
            base = repo.merge_base(main_ref, entry.candidate) or f"{entry.candidate}^"
        diff = repo.diff(base, entry.candidate)
    return {**entry.to_json(), "diff": diff, "history": [e.to_json() for e in matches]}


def rejected_refs(repo: GitRepo) -> dict[str, str]:
    return repo.refs_under(t.REJECTED_PREFIX)
