"""The errors a user can meet, each tied to the exit-code convention shared by the CLIs.

0 success, 1 a negative verdict or a refusal by a guard, 2 usage or input error,
3 an invalid run or an environment failure.
"""

from __future__ import annotations


class RatchetError(Exception):
    """An expected failure: printed as one clear message, never as a traceback."""

    exit_code = 3

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(RatchetError):
    exit_code = 2


class Refused(RatchetError):
    exit_code = 1


class EnvironmentFailure(RatchetError):
    exit_code = 3


class InvalidRun(RatchetError):
    """The test run produced no trustworthy result; it is never turned into a verdict."""

    exit_code = 3
