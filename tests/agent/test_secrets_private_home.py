"""Nothing secret to read, nothing to carry out (issue 24, item 6), through the real gate.

The attack, as it was tried on landed main: an automated proposal's code reads the
credentials in the home folder (`~/.gitconfig` with a forge token, pip's configuration
with an index password) and raises them as its assertion message, so that the rejection
writes them into a git note (which people push) and the gate's output. Now the suite has
a private, empty home of its own and cannot read the user's (nor anyone's under /home
or /root); and whatever it prints or raises is redacted before it is stored, so a
secret-shaped value from the suite's own source does not get through either.

The look-alike: a script that reads its configuration from the environment and from a
file in the tree, and keeps its state in its home folder, is accepted as before.

The gate process runs with HOME set to a temporary folder holding the planted files, so
that the user's real home is never touched.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import pytest
from repo_setup import CALC, Sandbox

from evolution.ratchet import Comparison, Regression
from evolution.trail.write import NOTE_TEXT_CHARS, TEXT_CHARS, failure_texts, rejection_note

pytestmark = pytest.mark.e2e  # real gate runs: `pytest -m "not e2e"` skips them

ADD = "tests/test_calc.py::test_add"

# add() is broken for real users (a regression), and its failure message is everything
# it could read of the home folders: `~` as the suite sees it, the gate's HOME by its
# path (a white-box attacker knows it), the user's home from the password database, and
# the other homes.
READ_THE_HOME = CALC.replace(
    "def add(a, b):\n    return a + b\n",
    '''def add(a, b):
    import json, os, pwd

    seen = {}

    def read(label, path):
        try:
            seen[label] = "listed:" + repr(sorted(os.listdir(path))) if os.path.isdir(path) \\
                else "read:" + open(path).read()
        except OSError as exc:
            seen[label] = type(exc).__name__

    read("private home", os.path.expanduser("~"))
    read("~/.gitconfig", os.path.expanduser("~/.gitconfig"))
    read("gitconfig", "@HOME@/.gitconfig")
    read("pip.conf", "@HOME@/.config/pip/pip.conf")
    read("npmrc", "@HOME@/.npmrc")
    read("home by path", "@HOME@")
    read("user's home", pwd.getpwuid(os.getuid()).pw_dir)
    read("/home", "/home")
    read("/root", "/root")
    raise AssertionError("SEEN=" + json.dumps(seen, sort_keys=True))
''',
)


def _planted_home(root: Path) -> dict[str, str]:
    """A home folder with credentials in the usual files; the values to look for."""
    home = root / "home"
    (home / ".config" / "pip").mkdir(parents=True)
    values = {
        "marker": f"Planted-{secrets.token_hex(8)}",  # no credential's shape: only reading shows it
        "token": "ghp_" + secrets.token_hex(18),
        "password": "pw-" + secrets.token_hex(8),
        "npm": secrets.token_hex(16),
    }
    (home / ".gitconfig").write_text(
        f"[user]\n\tname = {values['marker']}\n[github]\n\ttoken = {values['token']}\n"
    )
    (home / ".config" / "pip" / "pip.conf").write_text(
        f"[global]\nindex-url = https://alice:{values['password']}@pypi.example/simple\n"
    )
    (home / ".npmrc").write_text(f"//registry.npmjs.org/:_authToken={values['npm']}\n")
    return {"home": str(home), **values}


def _everything_written(box: Sandbox, output: str) -> str:
    """The gate's output, every note, and the verdict cache: where a run's text is stored."""
    texts = [output]
    for line in box.git("notes", "--ref=evolve", "list", check=False).splitlines():
        texts.append(box.git("cat-file", "-p", line.split()[0]))
    cache = box.path / ".git" / "evolve" / "verdicts"
    texts += [entry.read_text() for entry in sorted(cache.glob("*.json"))]
    return "\n".join(texts)


def _validate(box: Sandbox, branch: str, env: dict[str, str]) -> tuple[int, dict, str]:
    done = box.evolve("validate", branch, "--json", "--reruns", "0", env=env)
    try:
        report = json.loads(done.stdout)
    except ValueError:
        report = {}
    return done.returncode, report, done.stdout + done.stderr


def test_a_proposal_cannot_read_the_home_folders_nor_carry_their_credentials_out(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    planted = _planted_home(tmp_path)
    main = sandbox.head()
    sandbox.branch("evolve/read-home", {"scripts/calc.py": READ_THE_HOME.replace(
        "@HOME@", planted["home"])}, proposal=True)  # fmt: skip
    code, report, output = _validate(sandbox, "evolve/read-home", {"HOME": planted["home"]})
    assert code == 1, output
    assert [r["nodeid"] for r in report["regressions"]] == [ADD]
    assert sandbox.head() == main
    text = report["regressions"][0]["text"]
    seen = json.loads(text.split("SEEN=", 1)[1].splitlines()[0].rstrip("'\""))
    # The suite's home is its own, and empty; nothing of anyone else's could be read.
    assert seen.pop("private home") == "listed:[]", seen
    assert seen.pop("~/.gitconfig") == "FileNotFoundError"
    read = {label: what for label, what in seen.items() if what.startswith(("read:", "listed:"))}
    assert read == {}, f"the suite read: {read}"
    written = _everything_written(sandbox, output)
    for name in ("marker", "token", "password", "npm"):
        assert planted[name] not in written, f"the planted {name} reached what the gate wrote"


# The suite's own source holds secret-shaped values (a test fixture's, a placeholder
# someone pasted): add() prints them and raises them. Their shapes are all that gives
# them away.
SHAPED_SECRETS = {
    "github": "ghp_" + "Rk2" * 12,
    "aws": "AKIA" + "QX7Z" * 4,
    "openai": "sk-proj-" + "Tn5" * 9,
    "key": "MIIEowIBAAKCAQEAq8s",
    "url": "hunter2-in-a-url",
}
PRINTS_SECRETS = CALC.replace(
    "def add(a, b):\n    return a + b\n",
    f'''def add(a, b):
    token = "{SHAPED_SECRETS["github"]}"
    aws = "{SHAPED_SECRETS["aws"]}"
    print("using", token, aws)
    key = ("-----BEGIN RSA PRIVATE KEY-----\\n{SHAPED_SECRETS["key"]}\\n"
           "-----END RSA PRIVATE KEY-----")
    raise AssertionError(
        f"add could not authenticate with {{token}} and {{aws}} or {SHAPED_SECRETS["openai"]}; "
        f"key {{key!r}}, index https://bob:{SHAPED_SECRETS["url"]}@pypi.example/simple, "
        "and the sum was not 5"
    )
''',
)


def test_secret_shaped_values_a_test_prints_or_raises_are_redacted_before_they_are_stored(
    sandbox: Sandbox,
) -> None:
    sandbox.branch("evolve/shaped", {"scripts/calc.py": PRINTS_SECRETS}, proposal=True)
    code, report, output = _validate(sandbox, "evolve/shaped", {})
    assert code == 1, output
    assert [r["nodeid"] for r in report["regressions"]] == [ADD]
    written = _everything_written(sandbox, output)
    for name, value in SHAPED_SECRETS.items():
        assert value not in written, f"the {name} value reached what the gate wrote"
    note = sandbox.git("notes", "--ref=evolve", "show", "refs/evolve/rejected/evolve-shaped")
    # The failure stays readable: what failed, where, and what it said besides.
    for redacted in ("«redacted:github-token»", "«redacted:aws-access-key»",
                     "«redacted:api-key»", "«redacted:private-key»", "«redacted:url-password»"):
        assert redacted in note, note
    assert "and the sum was not 5" in note and "scripts/calc.py" in note


SETTINGS = '''\
"""A greeting whose style comes from the environment and a file in the tree, and which
keeps a count of greetings in the user's configuration folder."""

import configparser
import os
from pathlib import Path


def style():
    parser = configparser.ConfigParser()
    parser.read(Path(__file__).with_name("settings.ini"))
    return os.environ.get("GREETING_STYLE") or parser.get("greeting", "style")


def greet(name):
    state = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "greeter"
    state.mkdir(parents=True, exist_ok=True)
    count = state / "count"
    seen = int(count.read_text()) if count.exists() else 0
    count.write_text(str(seen + 1))
    text = f"hello, {name}"
    return text.upper() if style() == "loud" else text
'''
SETTINGS_TESTS = """\
import os
from pathlib import Path

from scripts.settings import greet, style


def test_style_comes_from_the_environment_or_the_tree():
    assert style() == os.environ.get("GREETING_STYLE", "plain")


def test_greet_keeps_its_count_in_the_home_folder():
    loud = os.environ.get("GREETING_STYLE") == "loud"
    assert greet("ada") == ("HELLO, ADA" if loud else "hello, ada")
    assert (Path.home() / ".config" / "greeter" / "count").read_text() == "1"
"""
# The automated proposal: the same behaviour, written another way.
REFACTORED = SETTINGS.replace(
    '    text = f"hello, {name}"\n    return text.upper() if style() == "loud" else text\n',
    '    greeting = "hello, " + name\n'
    '    return greeting.upper() if style() == "loud" else greeting\n',
)


@pytest.mark.parametrize("style", ["plain", "loud"])
def test_a_script_that_reads_its_configuration_from_the_environment_and_the_tree_passes(
    sandbox: Sandbox, tmp_path: Path, style: str
) -> None:
    env = {"HOME": _planted_home(tmp_path)["home"]}
    if style == "loud":
        env["GREETING_STYLE"] = "loud"
    sandbox.commit("a greeter configured by the environment and the tree", {
        "scripts/settings.py": SETTINGS,
        "scripts/settings.ini": "[greeting]\nstyle = plain\n",
        "tests/test_settings.py": SETTINGS_TESTS,
    })  # fmt: skip
    assert sandbox.evolve("baseline", "record", "--reruns", "0", env=env).returncode == 0
    tests = sandbox.baseline()["tests"]
    assert tests["tests/test_settings.py::test_greet_keeps_its_count_in_the_home_folder"] == (
        "passed"
    )
    assert tests["tests/test_settings.py::test_style_comes_from_the_environment_or_the_tree"] == (
        "passed"
    )
    sandbox.branch("evolve/greeter", {"scripts/settings.py": REFACTORED}, proposal=True)
    code, report, output = _validate(sandbox, "evolve/greeter", env)
    assert code == 0 and report["merged"], output
    assert report["regressions"] == []
    assert not (Path(env["HOME"]) / ".config" / "greeter").exists()  # its own home, not ours


# --- what a note keeps of a failure ------------------------------------------------------


def _regression(nodeid: str, text: str) -> Regression:
    return Regression(nodeid, "passed", "failed", text.splitlines()[0] if text else "", text)


def test_failure_text_in_a_note_is_capped_per_test_and_per_note_and_says_so() -> None:
    one_long_line = "E   AssertionError: " + "x" * 10000
    many_lines = "\n".join(f"line {i}" for i in range(100))
    regressions = [_regression(f"tests/test_m.py::test_{i}", one_long_line) for i in range(19)]
    regressions.insert(0, _regression("tests/test_m.py::test_lines", many_lines))
    text = failure_texts(regressions)
    blocks = text.split("--- ")[1:]
    assert "[… 88 more lines cut]" in blocks[0]
    assert all(len(block) <= TEXT_CHARS + 200 for block in blocks)
    assert "more characters cut]" in blocks[1]
    assert len(text) <= NOTE_TEXT_CHARS + 1000
    assert text.rstrip().endswith("more test(s) cut]")
    note = rejection_note(
        branch="evolve/x", proposal="x", reason="20 regressed",
        comparison=Comparison(regressions=regressions), tree="t", baseline_commit="c" * 40,
        passing_before=20, tests_run=20, passed=0, judged_at="now", sandbox="landlock",
    )  # fmt: skip
    assert len(note) < NOTE_TEXT_CHARS + 12000  # listing lines are capped too
    assert "Evolve-Regressed: " + " ".join(r.nodeid for r in regressions) in note


def test_a_note_redacts_what_the_run_did_not(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defence in depth: a regression that reaches the note unredacted (a verdict cached
    by an older gate, say) is redacted there, by value and by shape."""
    monkeypatch.setenv("RT_VENDOR_API_KEY", "vendor-key-0123456789")
    monkeypatch.setitem(os.environ, "RATCHET_GRANTED_NAMES", "")
    token = "glpat-" + "Ab3" * 8
    regression = _regression(ADD, f"E   AssertionError: {token} vendor-key-0123456789")
    note = rejection_note(
        branch="evolve/x", proposal="x", reason="1 regressed",
        comparison=Comparison(regressions=[regression]), tree="t", baseline_commit="c" * 40,
        passing_before=1, tests_run=1, passed=0, judged_at="now", sandbox="landlock",
    )  # fmt: skip
    assert token not in note and "vendor-key-0123456789" not in note
    assert "«redacted:gitlab-token»" in note and "«redacted:RT_VENDOR_API_KEY»" in note


CORPUS_TESTS = """\
import os
from pathlib import Path


def test_the_corpus_the_policy_lets_it_read():
    assert Path(os.environ["CORPUS"], "words.txt").read_text() == "alpha beta\\n"


def test_the_rest_of_that_home_stays_hidden():
    home = Path(os.environ["CORPUS"]).parent
    for path in (home / ".gitconfig", home / ".ssh" / "id_ed25519"):
        try:
            path.read_text()
        except OSError:
            continue
        raise AssertionError(f"read {path}")
"""


def test_read_paths_open_a_folder_of_a_home_on_purpose_and_nothing_else(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    planted = _planted_home(tmp_path)
    corpus = Path(planted["home"]) / "corpus"
    corpus.mkdir()
    (corpus / "words.txt").write_text("alpha beta\n")
    ssh = Path(planted["home"]) / ".ssh"
    ssh.mkdir()
    (ssh / "id_ed25519").write_text("a private key\n")
    env = {"HOME": planted["home"], "CORPUS": str(corpus)}
    sandbox.commit("tests that read a corpus", {"tests/test_corpus.py": CORPUS_TESTS})
    done = sandbox.evolve("baseline", "record", "--reruns", "0", "--json", env=env)
    assert done.returncode == 0, done.stderr
    before = sandbox.baseline()["tests"]
    assert before["tests/test_corpus.py::test_the_corpus_the_policy_lets_it_read"] == "failed"
    assert before["tests/test_corpus.py::test_the_rest_of_that_home_stays_hidden"] == "passed"
    # The corpus, on purpose; the credentials folder too, by mistake: it stays forbidden.
    sandbox.policy(read_paths=[str(corpus), str(ssh)])
    sandbox.branch("neutral", {"scripts/notes.txt": "neutral\n"})
    code, report, output = _validate(sandbox, "neutral", env)
    assert code == 0 and report["merged"], output
    assert report["newly_passing"] == [
        "tests/test_corpus.py::test_the_corpus_the_policy_lets_it_read"
    ]
    assert report["regressions"] == []
