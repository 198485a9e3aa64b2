"""Keep secret values out of everything Ratchet writes or sends.

A value is secret when it sits in an environment variable the configuration names as an
API key, or whose name says it is one (…API_KEY, …TOKEN, …SECRET, …PASSWORD). Every
prompt, ledger error, trace and commit message passes through `Redactor.__call__`,
which replaces each value with «redacted:NAME». Values shorter than 8 characters are
not treated as secrets: they would match ordinary text.

Text that untrusted code wrote (what a test run prints or raises, on its way into a git
note, the gate's output or the verdict cache) may hold secrets nobody named: a file it
read, a token in its own source. A Redactor made with `shapes=True` also replaces every
value shaped like a credential (`redact_shapes`): private key blocks, cloud and forge
token formats, URLs with a password, and `password=`/`token:`/`api_key` assignments.
The shapes are not applied to prompts or commit messages by default: they would rewrite
a source file's `password = ...` line that a model was asked to edit.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping

# The agent lists here the names of the vault secrets it handed a task, so that the
# task's own children (`evolve` running the gate or a model call) treat them as secrets
# whatever they are called.
SECRET_NAMES_VAR = "RATCHET_GRANTED_NAMES"  # a name the secret pattern must not match
SECRET_NAME = re.compile(
    r"(API_?KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|PRIVATE_KEY|ACCESS_KEY)", re.IGNORECASE
)
MIN_SECRET_LENGTH = 8


def is_secret_name(name: str, named: Iterable[str] = ()) -> bool:
    return name in set(named) or bool(SECRET_NAME.search(name))


def declared_secret_names(env: Mapping[str, str]) -> set[str]:
    return {n for n in env.get(SECRET_NAMES_VAR, "").split(",") if n}


# Credential shapes: (kind, pattern). Where the pattern has a group named `secret`, only
# that part is replaced (the key of an assignment stays readable); else the whole match.
# Every repetition that could backtrack over a long run of word characters is bounded:
# the text is untrusted, and a pattern quadratic in it would stall the gate.
# A key that names a secret: it ends in one of these words (`token`, `GH_TOKEN`,
# `_authToken`, `db_password`, `client_secret`), or in `key` after one (`secret_key`,
# `aws_secret_access_key`); `tokenizer` and `token_count` are not keys of secrets.
_KEY_NAME = (
    r"[A-Za-z0-9_.-]{0,40}(?:passw(?:or)?d|passwd|pwd|secret|token|api[_-]?key|apikey|"
    r"access[_-]?key|private[_-]?key|auth[_-]?key|credentials?)"
    r"(?:[_.-]?(?:access[_-]?)?key)?"
)
CREDENTIAL_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    # A PEM private key block, whole; one cut short (clipped text) to the end.
    ("private-key", re.compile(
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
        r"(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|.*\Z)", re.DOTALL)),
    ("aws-access-key", re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA)[A-Z0-9]{16}\b")),
    ("github-token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})")),
    ("gitlab-token", re.compile(r"\bgl(?:pat|dt|rt|ptt|cbt)-[A-Za-z0-9_-]{20,}")),
    ("slack-token", re.compile(r"\bxox[abposre]-[A-Za-z0-9-]{10,}")),
    ("api-key", re.compile(r"\bsk-(?:ant-|proj-|svcacct-|live-)?[A-Za-z0-9_-]{20,}")),
    ("stripe-key", re.compile(r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}")),
    ("google-api-key", re.compile(r"\bAIza[A-Za-z0-9_-]{35}")),
    ("package-token", re.compile(r"\b(?:npm_[A-Za-z0-9]{36}|pypi-[A-Za-z0-9_-]{50,}|"
                                 r"hf_[A-Za-z0-9]{30,})")),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
    # scheme://user:password@host: the password only.
    ("url-password", re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]{0,30}://[^/\s:@'\"]{0,200}:"
                                r"(?P<secret>[^/\s@'\"]+)@")),
    ("bearer", re.compile(r"(?i)\b(?:bearer|basic)\s+(?P<secret>[A-Za-z0-9._~+/=-]{16,})")),
    # password=..., "token": "...", api_key: ..., PGPASSWORD=... (also in reprs of dicts).
    ("assignment", re.compile(
        rf"(?i)(?<![A-Za-z0-9]){_KEY_NAME}['\"]?\s*(?:=|:|=>)\s*"
        # Quoted, or a bare word that ends where a value ends (not `get_token()`, not
        # `tokens[0]`: code on a traceback's source line is left readable).
        r"(?![\"']?«)(?P<secret>\"[^\"\n]{4,}\"|'[^'\n]{4,}'|[^\s'\",;()\[\]{}<>«»]{6,}+"
        r"(?=[\s'\",;)\]}]|\Z))")),
)  # fmt: skip


def _replace(kind: str) -> Callable[[re.Match[str]], str]:
    def substitute(match: re.Match[str]) -> str:
        if "secret" not in match.re.groupindex:
            return f"«redacted:{kind}»"
        start, end = match.span("secret")
        value = match.group("secret")
        quote = value[0] if value[:1] in ("'", '"') and value[-1:] == value[:1] else ""
        inner = f"{quote}«redacted:{kind}»{quote}"
        whole = match.group(0)
        offset = match.start()
        return whole[: start - offset] + inner + whole[end - offset :]

    return substitute


def redact_shapes(text: str) -> str:
    """`text` with every value shaped like a credential replaced by «redacted:KIND»."""
    for kind, pattern in CREDENTIAL_SHAPES:
        text = pattern.sub(_replace(kind), text)
    return text


class Redactor:
    def __init__(self, secrets: Mapping[str, str], *, shapes: bool = False) -> None:
        usable = {name: value for name, value in secrets.items() if len(value) >= MIN_SECRET_LENGTH}
        # Longest first, so a secret that contains another is replaced whole.
        self._pairs = sorted(usable.items(), key=lambda item: -len(item[1]))
        self.shapes = shapes

    @classmethod
    def from_environment(
        cls,
        named: Iterable[str] = (),
        env: Mapping[str, str] | None = None,
        extra: Mapping[str, str] | None = None,
        *,
        shapes: bool = False,
    ) -> Redactor:
        """The secrets of `env` (named, or named like secrets), plus `extra` (the vault's)."""
        env = os.environ if env is None else env
        names = set(named) | declared_secret_names(env)
        found = {k: v for k, v in env.items() if is_secret_name(k, names)}
        return cls({**found, **(extra or {})}, shapes=shapes)

    @property
    def names(self) -> set[str]:
        return {name for name, _ in self._pairs}

    def __call__(self, text: str) -> str:
        for name, value in self._pairs:
            if value in text:
                text = text.replace(value, f"«redacted:{name}»")
        return redact_shapes(text) if self.shapes else text


def scrubbed_environment(env: Mapping[str, str], named: Iterable[str] = ()) -> dict[str, str]:
    """`env` without any variable that holds a secret: for test runs and child processes."""
    names = set(named) | declared_secret_names(env)
    return {k: v for k, v in env.items() if not is_secret_name(k, names)}
