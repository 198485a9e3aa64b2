"""The `patch` proposer: a change made by any tool or person, as a unified diff or a file
of SEARCH/REPLACE blocks. It may touch only evolvable paths, like every proposal."""

from __future__ import annotations

import hashlib

from agent.errors import UsageError
from evolution.gitrepo import GitFailed
from evolution.propose.base import Change, Request, Spend
from evolution.propose.context import Context, check_paths, normalise
from evolution.propose.edits import MalformedReply, apply_blocks, parse_blocks


class PatchProposer:
    name = "patch"

    def propose(self, ctx: Context, request: Request, spend: Spend) -> Change:
        assert request.patch is not None
        patch = request.patch
        try:
            text = patch.read_text(encoding="utf-8")
        except OSError as error:
            raise UsageError(f"cannot read the patch {patch}: {error.strerror}") from None
        if any(line.lstrip().startswith("<<<<<<< SEARCH") for line in text.splitlines()):
            blocks = parse_blocks(text)
            paths = sorted({normalise(b.path) for b in blocks})
        else:
            blocks = []
            try:
                paths = sorted({normalise(p) for p in ctx.repo.diff_paths(patch)})
            except GitFailed as error:
                raise MalformedReply(
                    f"the patch does not apply: not a unified diff git can read: {error}"
                ) from None
        check_paths(paths, ctx.policy)
        if request.targets and not set(paths) <= set(request.targets):
            outside = ", ".join(sorted(set(paths) - set(request.targets)))
            raise UsageError(f"the patch changes files outside the targets: {outside}")
        if blocks:
            try:
                files = apply_blocks({p: ctx.read(p) for p in paths}, blocks)
            except MalformedReply as malformed:
                raise MalformedReply(f"the patch does not apply: {malformed}") from None
        else:
            try:
                files = ctx.repo.apply_diff(ctx.main, patch, paths)
            except GitFailed as error:
                raise MalformedReply(f"the patch does not apply to main: {error}") from None
        return Change(files, hashlib.sha256(patch.read_bytes()).hexdigest())
