"""Unit tests of `evolution.gate.verdict_cache`: a verdict is reused only when the gate
itself wrote it, under the same conditions. Each entry is signed with a key in the
gate's state folder; an edited entry, a forged one, or one moved under another key is
refused, removed and reported, so a test run that could write the folder still could
not plant a pass. A real cache folder in tmp_path; nothing is mocked.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from evolution.gate.verdict_cache import (
    KEEP,
    KEY_FILE,
    VerdictCache,
    cache_key,
    environment_digest,
)
from evolution.run.report import RunResult

KEY = cache_key("tree1", "blob1", "policy1", "env1")
RERUNS: dict[str, dict[str, Any]] = {"tests/test_a.py::flaky": {"runs": 3, "passed": 2}}


def sample() -> RunResult:
    """A run with every field the cache keeps."""
    return RunResult(
        outcomes={"tests/test_a.py::ok": "passed", "tests/test_a.py::flaky": "failed"},
        failures={"tests/test_a.py::flaky": "AssertionError: 1 != 2"},
        collector_errors={"tests/test_b.py": "ImportError: no module named b"},
        exitcode=1,
        duration_s=2.5,
        sandbox="bwrap",
    )


@pytest.fixture
def cache(tmp_path: Path) -> VerdictCache:
    """A cache on a fresh state folder: its key is made on first use, as the gate's is."""
    return VerdictCache(tmp_path / "state")


def entry(cache: VerdictCache, key: str = KEY) -> Path:
    """The file an entry lives in: what a forger would edit, copy or rename."""
    return cache.folder / f"{key}.json"


def test_a_verdict_comes_back_as_it_was_put(cache: VerdictCache) -> None:
    cache.put(KEY, sample(), RERUNS)
    assert cache.get(KEY) == (sample(), RERUNS)
    assert cache.ignored == []


def test_what_only_balances_the_next_run_is_not_cached(cache: VerdictCache) -> None:
    """Durations and a split run's owners are not part of the verdict (RunResult says
    so): a cached run comes back without them, and still equal in what it decides."""
    timed = sample()
    timed.durations, timed.owners = {"tests/test_a.py::ok": 0.1}, {"tests/test_a.py": 0}
    cache.put(KEY, timed, {})
    found = cache.get(KEY)
    assert found is not None
    assert found[0] == sample() and found[0].durations == {} and found[0].owners is None


def test_an_empty_cache_misses_without_reporting_anything(cache: VerdictCache) -> None:
    assert cache.get(KEY) is None
    assert cache.get_data(KEY) is None
    assert cache.ignored == []


def test_a_key_from_other_conditions_misses(cache: VerdictCache) -> None:
    """Each part of the key is a condition that can change the verdict."""
    cache.put(KEY, sample(), {})
    for other in (
        cache_key("tree2", "blob1", "policy1", "env1"),
        cache_key("tree1", "blob2", "policy1", "env1"),
        cache_key("tree1", "blob1", "policy2", "env1"),
        cache_key("tree1", "blob1", "policy1", "env2"),
    ):
        assert other != KEY
        assert cache.get(other) is None
    assert cache.ignored == []  # a miss is not a forgery
    assert cache.get(KEY) is not None


def test_an_edited_entry_is_refused_removed_and_reported(cache: VerdictCache) -> None:
    """A failing run turned into a passing one by editing its file: refused."""
    cache.put(KEY, sample(), {})
    path = entry(cache)
    mac, payload = path.read_bytes().split(b"\n", 1)
    path.write_bytes(mac + b"\n" + payload.replace(b'"failed"', b'"passed"'))
    assert cache.get(KEY) is None
    assert cache.ignored == [path.name]
    assert not path.exists()
    assert cache.get(KEY) is None and cache.ignored == [path.name]  # reported once


def test_an_entry_signed_with_another_key_is_refused(tmp_path: Path, cache: VerdictCache) -> None:
    """A forger who can write entries but not read `cache.key` signs with a key of
    their own: the gate's cache does not accept it."""
    forger = VerdictCache(tmp_path / "elsewhere")
    forger.put(KEY, sample(), {})
    entry(cache).parent.mkdir(parents=True)
    entry(cache).write_bytes(entry(forger).read_bytes())
    assert cache.get(KEY) is None
    assert cache.ignored == [f"{KEY}.json"] and not entry(cache).exists()


def test_an_unsigned_entry_is_refused(cache: VerdictCache) -> None:
    entry(cache).parent.mkdir(parents=True)
    entry(cache).write_text(json.dumps({"result": sample().to_json(), "reruns": {}}))
    assert cache.get(KEY) is None
    assert cache.ignored == [f"{KEY}.json"] and not entry(cache).exists()


def test_a_genuine_entry_moved_under_another_key_is_refused(cache: VerdictCache) -> None:
    """The signature covers the key: the gate's own verdict on one tree cannot be
    replayed as the verdict on another."""
    other = cache_key("tree2", "blob1", "policy1", "env1")
    cache.put(KEY, sample(), {})
    entry(cache).rename(entry(cache, other))
    assert cache.get(other) is None
    assert cache.ignored == [f"{other}.json"]


def test_a_second_cache_on_the_same_folder_shares_the_key(cache: VerdictCache) -> None:
    """The key is made once, private to the user, and read by every later gate: an
    entry one gate wrote verifies for the next."""
    cache.put(KEY, sample(), RERUNS)
    key_file = cache.state_dir / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(key_file.read_bytes()) == 32
    again = VerdictCache(cache.state_dir)
    assert again.get(KEY) == (sample(), RERUNS)
    assert key_file.read_bytes() == again._key()


def test_a_new_key_invalidates_every_entry(cache: VerdictCache) -> None:
    """Deleting the key (or the state folder) is how a user distrusts the cache: every
    entry then fails to verify and is run again."""
    cache.put(KEY, sample(), {})
    (cache.state_dir / KEY_FILE).unlink()
    assert cache.get(KEY) is None and cache.ignored == [f"{KEY}.json"]


def test_put_data_and_get_data_sign_any_json_object(cache: VerdictCache) -> None:
    """The signed store other gate state uses (a run in installments keeps its parts
    here): the same protection as a verdict."""
    data = {"done": ["tests/test_a.py"], "parts": {"0": {"outcomes": {}}}, "n": 2}
    cache.put_data("installments-x", data)
    assert cache.get_data("installments-x") == data
    path = entry(cache, "installments-x")
    mac, payload = path.read_bytes().split(b"\n", 1)
    path.write_bytes(mac + b"\n" + payload.replace(b'"n": 2', b'"n": 3'))
    assert cache.get_data("installments-x") is None
    assert cache.ignored == ["installments-x.json"]


def test_signed_data_that_is_not_a_verdict_is_a_miss(cache: VerdictCache) -> None:
    """`get` reads a verdict's shape; a genuine entry of another shape under the same
    key is not a verdict, and not a forgery either."""
    cache.put_data(KEY, {"something": "else"})
    assert cache.get(KEY) is None
    assert cache.ignored == [] and entry(cache).exists()


def test_only_the_newest_entries_are_kept(cache: VerdictCache) -> None:
    """Entries are operational state: the oldest go past KEEP, by modification time."""
    for n in range(KEEP):
        cache.put_data(f"k{n}", {"n": n})
    for n in range(KEEP):  # explicit, distinct ages: k0 the oldest
        os.utime(entry(cache, f"k{n}"), (1_000_000 + n, 1_000_000 + n))
    cache.put_data("newest", {"n": -1})
    kept = {path.stem for path in cache.folder.glob("*.json")}
    assert len(kept) == KEEP
    assert "k0" not in kept and {"k1", f"k{KEEP - 1}", "newest"} <= kept


def test_the_environment_digest_is_stable_and_names_the_isolation() -> None:
    assert environment_digest("bwrap") == environment_digest("bwrap")
    assert environment_digest("bwrap") != environment_digest("none")
    assert len(environment_digest("none")) == 16


def test_the_environment_digest_sees_an_installed_distribution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new or upgraded distribution on the import path can change a verdict: the
    digest reads their metadata folders' names."""
    before = environment_digest("none")
    (tmp_path / "somepackage-1.0.dist-info").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path))
    with_one = environment_digest("none")
    assert with_one != before
    (tmp_path / "somepackage-1.0.dist-info").rename(tmp_path / "somepackage-1.1.dist-info")
    assert environment_digest("none") not in (before, with_one)
