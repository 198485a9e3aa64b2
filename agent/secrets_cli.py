"""`agent secrets init|set|get|list|rotate|rm|verify`.

A value never comes from an argument (it would sit in the shell history and in
/proc/PID/cmdline for every user to read): `set` and `rotate` read it from stdin, or
from a hidden prompt on a terminal. `get` prints only to a terminal unless `--force`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from agent.console import JsonOpt, new_app, run_command

if TYPE_CHECKING:
    from agent.vault import Vault

secrets_app = new_app(
    None,
    "The age-encrypted vault: secrets with a purpose, the tasks that may have them, "
    "and a hash-chained access log.",
)

RootOpt = Annotated[
    Path, typer.Option("--root", help="The deployment root (the vault is in its runs/).")
]
IdentityOpt = Annotated[
    Path | None,
    typer.Option("--identity", help="The age identity file (default: AGENT_IDENTITY, "
                 "else ~/.config/ratchet/identity.txt)."),
]


def _vault_command(
    root: Path, identity: Path | None, as_json: bool, body: Callable[[Vault], int]
) -> None:
    def command() -> int:
        from agent.accesslog import ChainBroken
        from agent.config import load_runtime
        from agent.console import err
        from agent.errors import Refused, UsageError
        from agent.vault import Vault, VaultError

        runs = load_runtime(root.resolve()).runs
        vault = Vault(runs, identity)
        try:
            code = body(vault)
        except VaultError as error:
            raise UsageError(str(error)) from None
        except ChainBroken as error:
            raise Refused(f"the access log does not verify: {error}") from None
        if vault.recovered:
            err.print(f"warning: {vault.path} did not decrypt; the previous version "
                      f"({vault.previous.name}) was used: its last change is lost")
        return code

    run_command(as_json, command)


def _read_value(prompt: str) -> str:
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass(prompt)
    return sys.stdin.read().rstrip("\n")


def _tasks(value: str) -> list[str]:
    return [t.strip() for t in value.split(",") if t.strip()]


@secrets_app.command()
def init(root: RootOpt = Path("."), identity: IdentityOpt = None, as_json: JsonOpt = False
         ) -> None:
    """Create the age identity (mode 0600, outside the repository) and an empty vault."""

    def body(vault: Vault) -> int:
        from agent.console import emit_json, say

        recipient = vault.init()
        if as_json:
            emit_json({"vault": str(vault.path), "identity": str(vault.identity_path),
                       "recipient": recipient})
        else:
            say(f"vault: {vault.path}\nidentity: {vault.identity_path} (keep it safe, "
                f"and out of the repository)\nrecipient: {recipient}")
        return 0

    _vault_command(root, identity, as_json, body)


def _store(name: str, purpose: str, tasks: str, root: Path, identity: Path | None,
           as_json: bool, *, rotate: bool) -> None:
    def body(vault: Vault) -> int:
        from agent.console import emit_json, say
        from agent.vault import VaultError

        known = name in vault.contents.secrets
        if rotate and not known:
            raise VaultError(f"no secret named {name} to rotate")
        value = _read_value(f"{'new ' if rotate else ''}value of {name}: ")
        vault.set(name, value, purpose, _tasks(tasks))
        if as_json:
            emit_json({"name": name, "replaced": known})
        else:
            say(f"{'rotated' if known else 'stored'} {name}")
        return 0

    _vault_command(root, identity, as_json, body)


@secrets_app.command("set")
def set_secret(
    name: str,
    purpose: Annotated[str, typer.Option("--purpose", help="What the secret is for.")] = "",
    tasks: Annotated[
        str, typer.Option("--tasks", help="The tasks that may have it, comma-separated.")
    ] = "",
    root: RootOpt = Path("."),
    identity: IdentityOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Store NAME; the value is read from stdin (or a hidden prompt), never an argument."""
    _store(name, purpose, tasks, root, identity, as_json, rotate=False)


@secrets_app.command()
def rotate(
    name: str,
    root: RootOpt = Path("."),
    identity: IdentityOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Replace NAME's value (read from stdin or a prompt), keeping its purpose and tasks."""
    _store(name, "", "", root, identity, as_json, rotate=True)


@secrets_app.command()
def get(
    name: str,
    force: Annotated[
        bool, typer.Option("--force", help="Print even when stdout is not a terminal.")
    ] = False,
    root: RootOpt = Path("."),
    identity: IdentityOpt = None,
) -> None:
    """Print NAME's value, only to a terminal unless --force (the read is logged)."""

    def body(vault: Vault) -> int:
        from agent.errors import Refused

        if not sys.stdout.isatty() and not force:
            raise Refused("stdout is not a terminal: refusing to print a secret "
                          "(pass --force to pipe it)")
        sys.stdout.write(vault.get(name) + "\n")
        return 0

    _vault_command(root, identity, False, body)


@secrets_app.command("list")
def list_secrets(root: RootOpt = Path("."), identity: IdentityOpt = None,
                 as_json: JsonOpt = False) -> None:
    """Names, purposes and tasks; never values."""

    def body(vault: Vault) -> int:
        from agent.console import emit_json, plain, say

        names = vault.names()
        if as_json:
            emit_json({"secrets": names})
        for item in [] if as_json else names:
            tasks = ", ".join(item["tasks"]) or "no task"
            say(f"{item['name']:<28} {plain(item['purpose'] or '-')}  [{plain(tasks)}]")
        if not names and not as_json:
            say("the vault is empty")
        return 0

    _vault_command(root, identity, as_json, body)


@secrets_app.command()
def rm(name: str, root: RootOpt = Path("."), identity: IdentityOpt = None,
       as_json: JsonOpt = False) -> None:
    """Remove NAME from the vault."""

    def body(vault: Vault) -> int:
        from agent.console import emit_json, say

        vault.remove(name)
        if as_json:
            emit_json({"removed": name})
        else:
            say(f"removed {name}")
        return 0

    _vault_command(root, identity, as_json, body)


@secrets_app.command()
def verify(root: RootOpt = Path("."), identity: IdentityOpt = None,
           as_json: JsonOpt = False) -> None:
    """Walk the access log's chain. Exit 1 on any edited, deleted, reordered or forged
    entry, naming the first one."""

    def body(vault: Vault) -> int:
        from agent.console import emit_json, say

        count = vault.log.verify()
        if as_json:
            emit_json({"verified": True, "entries": count})
        else:
            say(f"access log verified: {count} entries, chain intact")
        return 0

    _vault_command(root, identity, as_json, body)
