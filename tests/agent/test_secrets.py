"""The vault and its access log: real age encryption (pyrage), real files, the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from agent.accesslog import ChainBroken
from agent.vault import Vault, VaultError
from tests.agent_setup import AGENT, agent_env, write_config

SECRET = "pg-pass-Hx81vQ02zzLk"


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AGENT_IDENTITY", str(tmp_path / "home" / "identity.txt"))
    write_config(tmp_path / "deploy-root", [{"name": "backup", "command": "true",
                                              "timeout_s": 5, "evidence": "exit"}])
    return tmp_path / "deploy-root"


def secrets(root: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AGENT, "secrets", *args, "--root", str(root)],
        input=stdin, capture_output=True, text=True, timeout=60, check=False,
        env=agent_env({"AGENT_IDENTITY": os.environ["AGENT_IDENTITY"]}),
    )


def seeded(root: Path) -> Vault:
    assert secrets(root, "init").returncode == 0
    done = secrets(root, "set", "DB_PASSWORD", "--purpose", "the ledger's database",
                   "--tasks", "backup", stdin=SECRET + "\n")
    assert done.returncode == 0, done.stderr
    return Vault(root / "runs")


def test_init_set_list_get_rotate_rm_through_the_cli(root: Path):
    vault = seeded(root)
    identity = Path(os.environ["AGENT_IDENTITY"])
    assert identity.stat().st_mode & 0o777 == 0o600
    assert not identity.is_relative_to(root)
    assert (root / "runs" / "vault.age").stat().st_mode & 0o777 == 0o600
    assert SECRET.encode() not in (root / "runs" / "vault.age").read_bytes()
    listed = json.loads(secrets(root, "list", "--json").stdout)["secrets"]
    assert [(s["name"], s["purpose"], s["tasks"]) for s in listed] == [
        ("DB_PASSWORD", "the ledger's database", ["backup"])
    ]
    assert SECRET not in secrets(root, "list").stdout
    # Not a terminal: refused unless --force.
    assert secrets(root, "get", "DB_PASSWORD").returncode == 1
    assert secrets(root, "get", "DB_PASSWORD", "--force").stdout == SECRET + "\n"
    assert secrets(root, "rotate", "DB_PASSWORD", stdin="new-value-123456").returncode == 0
    assert Vault(root / "runs").get("DB_PASSWORD") == "new-value-123456"
    assert Vault(root / "runs").contents.secrets["DB_PASSWORD"].tasks == ["backup"]
    assert secrets(root, "rm", "DB_PASSWORD").returncode == 0
    assert Vault(root / "runs").contents.secrets == {}
    actions = [e["action"] for e in vault.log.entries()]
    assert actions == ["init", "set", "list", "list", "get", "rotate", "get", "rm"]
    assert secrets(root, "verify").returncode == 0


def test_a_value_is_never_taken_from_an_argument(root: Path):
    seeded(root)
    done = secrets(root, "set", "TOKEN", SECRET)
    assert done.returncode == 2  # no such argument: usage error, nothing stored
    assert "TOKEN" not in Vault(root / "runs").contents.secrets


def tamper(root: Path, change) -> str:
    log = root / "runs" / "secrets-access.jsonl"
    lines = log.read_text().splitlines()
    log.write_text("\n".join(change(lines)) + "\n")
    done = secrets(root, "verify")
    assert done.returncode == 1, done.stdout
    return done.stderr


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda ls: [ls[0], ls[1].replace('"set"', '"get"'), *ls[2:]], "edited"),
        (lambda ls: [ls[0], *ls[2:]], "deleted or reordered"),
        (lambda ls: [ls[0], ls[2], ls[1], *ls[3:]], "deleted or reordered"),
        (lambda ls: ls[:-1], "cut off the end"),
    ],
    ids=["edited", "deleted", "reordered", "truncated"],
)
def test_every_kind_of_chain_break_is_detected(root: Path, change, expected):
    vault = seeded(root)
    vault.get("DB_PASSWORD")
    assert expected in tamper(root, change)


def test_an_entry_appended_without_the_key_is_detected(root: Path):
    seeded(root)
    import hashlib

    def forge(lines: list[str]) -> list[str]:
        last = json.loads(lines[-1])
        entry = {**last, "seq": last["seq"] + 1, "action": "get", "who": "intruder",
                 "prev": hashlib.sha256(json.dumps(last, sort_keys=True,
                                                   separators=(",", ":")).encode()).hexdigest(),
                 "hmac": "0" * 64}
        return [*lines, json.dumps(entry, sort_keys=True, separators=(",", ":"))]

    assert "written without the vault's key" in tamper(root, forge)


def test_a_wrong_identity_is_a_clear_error(root: Path, tmp_path: Path):
    seeded(root)
    other = tmp_path / "other" / "identity.txt"
    from agent.vault import create_identity

    create_identity(other)
    done = secrets(root, "list", "--identity", str(other))
    assert done.returncode == 2
    assert "was not encrypted for the identity" in done.stderr
    assert "Traceback" not in done.stderr
    with pytest.raises(VaultError, match="no identity"):
        _ = Vault(root / "runs", tmp_path / "missing.txt").contents


def test_a_vault_truncated_mid_write_falls_back_to_the_previous_version(root: Path):
    vault = seeded(root)
    vault.set("SECOND", "second-value-999", "another", [])
    path = root / "runs" / "vault.age"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    done = secrets(root, "list", "--json")
    assert done.returncode == 0
    assert [s["name"] for s in json.loads(done.stdout)["secrets"]] == ["DB_PASSWORD"]
    assert "did not decrypt; the previous version" in done.stderr
    # With both versions unreadable it says so, and never invents an empty vault.
    (root / "runs" / "vault.age.prev").write_bytes(b"garbage")
    with pytest.raises(VaultError, match="corrupt"):
        _ = Vault(root / "runs").contents


def test_the_chain_check_itself(tmp_path: Path):
    from agent.accesslog import AccessLog

    log = AccessLog(tmp_path / "log.jsonl", b"k" * 32)
    for index in range(5):
        log.append("cli", f"S{index}", "get")
    assert log.verify() == 5
    with pytest.raises(ChainBroken, match="written without the vault's key"):
        AccessLog(tmp_path / "log.jsonl", b"x" * 32).verify()


def test_a_bad_configuration_is_a_usage_error_not_a_traceback(root: Path):
    (root / "deploy" / "agent.toml").write_text('[[tasks]]\nname = "x"\n')
    done = secrets(root, "list")
    assert done.returncode == 2
    assert "tasks[0]: 'command' is required" in done.stderr
    assert "Traceback" not in done.stderr
