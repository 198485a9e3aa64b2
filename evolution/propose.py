"""`evolve propose`: one proposal, on its own branch, with the trailers the trail needs.

Three proposers share one path from change to branch:
- `llm` asks the configured model chain for SEARCH/REPLACE blocks, reflecting a reply
  that does not apply back to the model (at most 3 times) before giving up;
- `mutate` repairs a target against its failing baseline tests offline (genetic
  improvement, `evolution/mutate/`);
- `patch` takes a unified diff or a SEARCH/REPLACE file from any tool or person.
`auto` (the default) asks the models and falls back to `mutate` when none is
configured or none answers.

The branch is `evolve/<UTC timestamp>-<slug>`, made from main with one commit, built
with plumbing: the user's working tree, index and stash are never touched. Secrets are
redacted from the prompt and the commit message; the gate later judges the branch.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

from agent.config import SPEC_PATH, ModelConfig, RuntimeConfig, load_runtime
from agent.errors import EnvironmentFailure, UsageError
from agent.ledger import Ledger
from agent.llm import Completion, LLMClient, LLMRefused, LLMUnavailable
from agent.redact import Redactor
from evolution.baseline import read_baseline
from evolution.edits import MalformedReply, apply_blocks, parse_blocks
from evolution.gate import resolve_main
from evolution.gitrepo import GitRepo, slug
from evolution.mutate.search import SearchLimits
from evolution.policy import CONFIG_PATH, Policy, load_policy, matches
from evolution.trail import read_trail

PROPOSERS = ("auto", "llm", "mutate", "patch")
REFLECTIONS = 3
CONTEXT_CLIP = 6000
CONVENTION_FILES = ("CONVENTIONS.md", "AGENTS.md")


@dataclass
class ProposalResult:
    id: str
    status: str  # created | no-change | malformed | capped | killed | unavailable
    proposer: str
    branch: str = ""
    commit: str = ""
    model: str = ""
    cost_usd: float = 0.0
    tokens: int = 0
    changed: list[str] = field(default_factory=list)
    message: str = ""
    search: dict[str, Any] | None = None  # what `mutate` tried, when it ran

    @property
    def exit_code(self) -> int:
        return {"created": 0, "unavailable": 3}.get(self.status, 1)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "exit_code": self.exit_code}


@dataclass
class Context:
    repo: GitRepo
    main_ref: str
    main: str
    policy: Policy
    config: RuntimeConfig
    redact: Redactor


def _render(name: str, **values: Any) -> str:
    import jinja2

    source = (resources.files("evolution") / "prompts" / f"{name}.md.j2").read_text()
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        autoescape=False,
    )
    return env.from_string(source).render(**values)


def _clip(text: str) -> str:
    return text if len(text) <= CONTEXT_CLIP else text[:CONTEXT_CLIP] + "\n[… clipped]\n"


def normalise(path: str) -> str:
    pure = PurePosixPath(path.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise UsageError(f"{path}: give a path inside the repository, relative to its root")
    return str(pure)


def check_paths(paths: list[str], policy: Policy) -> None:
    for path in paths:
        if matches(path, policy.protected):
            raise UsageError(f"{path} is protected: proposals may never change it")
        if not matches(path, policy.evolvable):
            evolvable = ", ".join(policy.evolvable)
            raise UsageError(f"{path} is not under the evolvable paths ({evolvable})")


def open_context(repo: GitRepo) -> Context:
    main_ref, main = resolve_main(repo, None)
    policy = load_policy(repo, main)
    raw = repo.read_file(main, CONFIG_PATH)
    spec = repo.read_file(main, SPEC_PATH)
    config = load_runtime(
        repo.toplevel,
        raw.decode() if raw is not None else None,
        origin=f"{main_ref.removeprefix('refs/heads/')}:{CONFIG_PATH}",
        spec_text=spec.decode(errors="replace") if spec is not None else "",
    )
    redact = Redactor.from_environment(config.secret_env_names())
    return Context(repo, main_ref, main, policy, config, redact)


def failing_by_target(
    ctx: Context, targets: list[str]
) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """For each target, the baseline's tests that do not pass and whose test file names
    its module ({nodeid: outcome}), and the sources of the test files read on the way."""
    found = read_baseline(ctx.repo, ctx.main)
    by_target: dict[str, dict[str, str]] = {}
    sources: dict[str, str] = {}
    if found is None:
        return by_target, sources
    patterns = {t: re.compile(rf"\b{re.escape(PurePosixPath(t).stem)}\b") for t in targets}
    for nodeid, outcome in sorted(found[0].tests.items()):
        if outcome == "passed":
            continue
        test_file = nodeid.split("::", 1)[0]
        if test_file not in sources:
            raw = ctx.repo.read_file(ctx.main, test_file)
            sources[test_file] = raw.decode(errors="replace") if raw else ""
        for target, pattern in patterns.items():
            if pattern.search(sources[test_file]):
                by_target.setdefault(target, {})[nodeid] = outcome
    return by_target, sources


def _failing_for(
    ctx: Context, targets: list[str]
) -> tuple[list[dict[str, str]], list[tuple[str, str]]]:
    by_target, sources = failing_by_target(ctx, targets)
    merged = {nodeid: o for tests in by_target.values() for nodeid, o in tests.items()}
    failing = [{"nodeid": nodeid, "outcome": merged[nodeid]} for nodeid in sorted(merged)]
    used = sorted({t["nodeid"].split("::", 1)[0] for t in failing})
    return failing, [(path, _clip(sources[path])) for path in used]


def _rejected_for(ctx: Context, targets: list[str], limit: int = 3) -> list[dict[str, str]]:
    items = []
    for entry in read_trail(ctx.repo, ctx.main_ref, verdict="rejected", limit=50):
        touched = ctx.repo.changed_paths(entry.commit)
        if not set(touched) & set(targets):
            continue
        note = entry.trailers.get("Evolve-Note", [""])[0]
        lines = [ln.strip() for ln in note.splitlines() if "(passed ->" in ln]
        items.append(
            {
                "proposal": entry.proposal or entry.commit[:10],
                "goal": entry.goal or entry.subject,
                "regressions": "; ".join(lines[:5]) or "rejected",
            }
        )
        if len(items) == limit:
            break
    return items


def _conventions(ctx: Context) -> str:
    for name in CONVENTION_FILES:
        raw = ctx.repo.read_file(ctx.main, name)
        if raw is not None:
            return _clip(raw.decode(errors="replace"))
    return ""


def _prompt(ctx: Context, goal: str, files: dict[str, str | None]) -> list[dict[str, str]]:
    targets = sorted(files)
    failing, sources = _failing_for(ctx, targets)
    user = _render(
        "propose",
        goal=goal,
        conventions=_conventions(ctx),
        files=[(path, files[path]) for path in targets],
        failing=failing,
        failing_sources=sources,
        rejected=_rejected_for(ctx, targets),
    )
    return [
        {"role": "system", "content": _render("system", targets=targets)},
        {"role": "user", "content": user},
    ]


@dataclass
class _Spend:
    cost_usd: float = 0.0
    tokens: int = 0
    model: str = ""

    def add(self, completion: Completion) -> None:
        self.cost_usd += completion.cost_usd
        self.tokens += completion.tokens
        self.model = completion.model


def _ask_model(
    ctx: Context,
    client: LLMClient,
    goal: str,
    files: dict[str, str | None],
    spend: _Spend,
) -> tuple[dict[str, str], str]:
    """The changed files and the prompt hash, after at most REFLECTIONS reflections."""
    messages = _prompt(ctx, goal, files)
    prompt_sha = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()
    problem = ""
    for attempt in range(REFLECTIONS + 1):
        completion = client.complete(messages, purpose="propose")
        spend.add(completion)
        try:
            return apply_blocks(files, parse_blocks(completion.text)), prompt_sha
        except MalformedReply as malformed:
            problem = str(malformed)
        if attempt == REFLECTIONS:
            break
        messages = [
            *messages,
            {"role": "assistant", "content": completion.text},
            {
                "role": "user",
                "content": _render(
                    "reflect", problem=problem, attempt=attempt + 2, limit=REFLECTIONS + 1
                ),
            },
        ]
    raise MalformedReply(problem)


def _apply_patch(ctx: Context, patch: Path, targets: list[str]) -> dict[str, str]:
    try:
        text = patch.read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot read the patch {patch}: {error.strerror}") from None
    if any(line.lstrip().startswith("<<<<<<< SEARCH") for line in text.splitlines()):
        blocks = parse_blocks(text)
        paths = sorted({normalise(b.path) for b in blocks})
    else:
        paths = _diff_paths(ctx.repo, patch)
        blocks = []
    check_paths(paths, ctx.policy)
    if targets and not set(paths) <= set(targets):
        outside = ", ".join(sorted(set(paths) - set(targets)))
        raise UsageError(f"the patch changes files outside --target: {outside}")
    if blocks:
        files = {p: _read(ctx, p) for p in paths}
        return apply_blocks(files, blocks)
    return _apply_diff(ctx, patch, paths)


def _diff_paths(repo: GitRepo, patch: Path) -> list[str]:
    status, out, err = repo.run("apply", "--numstat", str(patch.resolve()), ok=(0, 1, 128))
    if status != 0 or not out.strip():
        raise MalformedReply(f"not a unified diff git can read: {err.strip() or 'empty'}")
    return sorted({normalise(line.split("\t", 2)[2]) for line in out.splitlines()})


def _apply_diff(ctx: Context, patch: Path, paths: list[str]) -> dict[str, str]:
    import tempfile

    with tempfile.TemporaryDirectory(dir=ctx.repo.state_dir_ready()) as scratch:
        env = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
        ctx.repo.run("read-tree", ctx.main, env=env)
        status, _, err = ctx.repo.run(
            "apply", "--cached", str(patch.resolve()), env=env, ok=(0, 1, 128)
        )
        if status != 0:
            raise MalformedReply(f"the patch does not apply to main: {err.strip()}")
        tree = ctx.repo.out("write-tree", env=env)
    changed = {}
    for path in paths:
        blob = ctx.repo.read_file(tree, path)
        if blob is not None:
            changed[path] = blob.decode("utf-8", errors="surrogateescape")
    return changed


def _read(ctx: Context, path: str) -> str | None:
    raw = ctx.repo.read_file(ctx.main, path)
    return raw.decode("utf-8", errors="surrogateescape") if raw is not None else None


def _commit(
    ctx: Context,
    changed: dict[str, str],
    *,
    proposal_id: str,
    proposer: str,
    goal: str,
    spend: _Spend,
    prompt_sha: str,
    details: str = "",
) -> tuple[str, str]:
    tree = ctx.repo.tree_of(ctx.main)
    for path, content in sorted(changed.items()):
        blob = ctx.repo.hash_blob(content.encode("utf-8", errors="surrogateescape"))
        tree = ctx.repo.tree_with_file(tree, path, blob)
    one_line_goal = " ".join(goal.split())
    message = ctx.redact(
        f"evolve: {one_line_goal[:60]}\n\n"
        f"Proposed by {proposer}{f' ({spend.model})' if spend.model else ''} for "
        f"{', '.join(sorted(changed))}.\n\n"
        + (f"{details}\n\n" if details else "")
        + f"Evolve-Proposal: {proposal_id}\n"
        f"Evolve-Proposer: {proposer}\n"
        f"Evolve-Model: {spend.model or 'none'}\n"
        f"Evolve-Goal: {one_line_goal}\n"
        f"Evolve-Cost-USD: {spend.cost_usd:.6f}\n"
        f"Evolve-Tokens: {spend.tokens}\n"
        f"Evolve-Prompt-SHA256: {prompt_sha}\n"
    )
    commit = ctx.repo.commit_tree(tree, [ctx.main], message)
    branch = f"evolve/{proposal_id}"
    if not ctx.repo.update_ref(f"refs/heads/{branch}", commit, None, "evolve: propose"):
        raise EnvironmentFailure(f"branch {branch} already exists")
    return branch, commit


def new_id(goal: str, now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{slug(goal, limit=40)}"


def propose(
    repo: GitRepo,
    *,
    targets: list[str],
    goal: str,
    proposer: str = "llm",
    patch: Path | None = None,
    models: list[str] | None = None,
    limits: SearchLimits | None = None,
    tried: set[str] | None = None,
    unsandboxed: bool = False,
) -> ProposalResult:
    if not goal.strip():
        raise UsageError("--goal must say what the change is for")
    if proposer not in PROPOSERS:
        raise UsageError("--proposer takes " + ", ".join(PROPOSERS))
    if proposer == "patch" and patch is None:
        raise UsageError("--proposer patch needs --patch FILE")
    if proposer != "patch" and not targets:
        raise UsageError("give at least one --target PATH")
    ctx = open_context(repo)
    targets = sorted({normalise(t) for t in targets})
    check_paths(targets, ctx.policy)
    result = ProposalResult(id=new_id(goal), status="no-change", proposer=proposer)
    kill_flag = ctx.config.kill_flag_path
    if kill_flag.exists():
        result.status, result.message = "killed", f"kill flag present ({kill_flag}): refusing"
        return result
    spend, prompt_sha, details = _Spend(), "", ""
    offline = proposer == "mutate" or (proposer == "auto" and not ctx.config.models)
    try:
        if proposer == "patch":
            assert patch is not None
            changed = _apply_patch(ctx, patch, targets)
            prompt_sha = hashlib.sha256(patch.read_bytes()).hexdigest()
        elif offline:
            changed, prompt_sha, details = _mutate_change(
                ctx, targets, limits, tried, result, unsandboxed
            )
        else:
            try:
                changed, prompt_sha = _llm_change(ctx, targets, goal, models, spend)
            except LLMUnavailable:
                if proposer != "auto":
                    raise
                # No model answered: the unconscious layer still works.
                changed, prompt_sha, details = _mutate_change(
                    ctx, targets, limits, tried, result, unsandboxed
                )
    except LLMRefused as refused:
        result.status, result.message = refused.status, str(refused)
    except LLMUnavailable as unavailable:
        result.status, result.message = "unavailable", str(unavailable)
    except NoRepair as none:
        result.status, result.message = "no-change", str(none)
    except MalformedReply as malformed:
        result.status = "malformed"
        result.message = f"no applicable change after {REFLECTIONS} reflections: {malformed}"
        if proposer == "patch":
            result.message = f"the patch does not apply: {malformed}"
        else:
            with Ledger(ctx.config.ledger) as ledger:
                ledger.note(
                    spend.model or "-", "propose", "malformed", ctx.redact(str(malformed))[:500]
                )
    else:
        # What actually proposed: `auto` resolves to the model chain or to mutate.
        result.proposer = "mutate" if details else "llm" if proposer == "auto" else proposer
        result.branch, result.commit = _commit(
            ctx,
            changed,
            proposal_id=result.id,
            proposer=result.proposer,
            goal=goal,
            spend=spend,
            prompt_sha=prompt_sha,
            details=details,
        )
        result.status, result.changed = "created", sorted(changed)
    result.model, result.cost_usd, result.tokens = (
        spend.model,
        round(spend.cost_usd, 6),
        spend.tokens,
    )
    result.message = ctx.redact(result.message)
    return result


class NoRepair(Exception):
    """`mutate` had nothing to repair, or found no repair within its limits."""


def _mutate_change(
    ctx: Context,
    targets: list[str],
    limits: SearchLimits | None,
    tried: set[str] | None,
    result: ProposalResult,
    unsandboxed: bool,
) -> tuple[dict[str, str], str, str]:
    """The first target with failing tests, repaired; its edits described for the commit."""
    from evolution.mutate.proposer import repair

    for target in targets:
        failing, _ = _failing_for(ctx, [target])
        if not failing:
            continue
        found = repair(ctx, target, [f["nodeid"] for f in failing], limits or SearchLimits(),
                       tried=tried, unsandboxed=unsandboxed)
        result.search = found.summary()
        if not found.result.repaired:
            raise NoRepair(
                f"mutate found no repair of {target} in {found.result.evaluated} candidates "
                f"({found.result.seconds:.1f} s, stopped: {found.result.stopped})"
            )
        lines = "\n".join(f"- {text}" for text in found.descriptions)
        details = (
            f"Repaired offline by mutation ({found.result.evaluated} candidates in "
            f"{found.result.seconds:.1f} s), making pass: {', '.join(found.failing)}\n{lines}"
        )
        return {target: found.result.source}, found.fingerprint, details
    raise NoRepair(
        "mutate needs a test that fails in the baseline and concerns "
        + ", ".join(targets)
    )


def _llm_change(
    ctx: Context, targets: list[str], goal: str, models: list[str] | None, spend: _Spend
) -> tuple[dict[str, str], str]:
    chain = ctx.config.models
    if models:
        known = {m.model: m for m in ctx.config.models}
        chain = tuple(known.get(name, ModelConfig(model=name)) for name in models)
    files = {path: _read(ctx, path) for path in targets}
    with Ledger(ctx.config.ledger) as ledger:
        client = LLMClient(ctx.config, ledger, ctx.redact, models=chain)
        return _ask_model(ctx, client, goal, files, spend)
