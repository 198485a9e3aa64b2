"""The errors a user can meet, each tied to the exit-code convention shared by the CLIs.

0 success, 1 a negative verdict or a refusal by a guard, 2 usage or input error,
3 an invalid run or an environment failure. Every domain error of the project derives
from `RatchetError` (copier's one `errors.py` root), so each CLI has one boundary,
`agent.console.run_command`, that turns any of them into a message and an exit code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class RatchetError(Exception):
    """An expected failure: printed as one clear message, never as a traceback.

    `lines` are printed as they are under the message (each problem of a spec, say);
    `details` are added to the JSON object a `--json` command prints instead.
    """

    exit_code = 3

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        lines: Sequence[str] = (),
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.lines = list(lines)
        self.details = dict(details or {})


class UsageError(RatchetError):
    exit_code = 2


class Refused(RatchetError):
    exit_code = 1


class EnvironmentFailure(RatchetError):
    exit_code = 3


class InvalidRun(RatchetError):
    """The test run produced no trustworthy result; it is never turned into a verdict."""

    exit_code = 3
