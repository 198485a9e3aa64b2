"""The OS sandbox of a test run, entered for real through `enter.py` on this host.

Each test starts a real child process inside the sandbox (Landlock, namespaces, dropped
capabilities) and has it try something a hostile suite would. Tests that need Landlock
skip with the reason where the kernel has none; CI's host has it.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
from host_layers import requires_layers
from launcher import ATTEMPT, LAUNCHER, launch

from agent.errors import EnvironmentFailure
from evolution.policy import Policy
from evolution.run.launch import sandboxed
from evolution.sandbox.enter import GRANTED_ENV, SETUP_FAILED, landlock_abi
from evolution.sandbox.isolation import choose
from evolution.sandbox.plan import (
    Confinement,
    hidden_homes,
    launch_plan,
    outer_grants,
    read_paths,
    readable_roots,
    rules,
)

needs_landlock = pytest.mark.skipif(landlock_abi() < 1, reason="this kernel has no Landlock")


def test_readable_roots_cover_everything_but_the_forbidden_paths(tmp_path: Path) -> None:
    (tmp_path / "repo" / "sub").mkdir(parents=True)
    (tmp_path / "other").mkdir()
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "into-repo").symlink_to(tmp_path / "repo" / "sub")
    (tmp_path / "elsewhere").symlink_to(tmp_path / "other")

    roots = readable_roots([tmp_path / "repo"], tops=[tmp_path])

    names = sorted(p.name for p in roots)
    assert names == ["elsewhere", "file.txt", "other"]  # not repo, not the link into it
    assert readable_roots([], tops=[tmp_path]) == [tmp_path]
    assert readable_roots([tmp_path], tops=[tmp_path]) == []
    deeper = readable_roots([tmp_path / "repo" / "sub"], tops=[tmp_path])
    assert tmp_path / "repo" not in deeper and tmp_path / "other" in deeper


def test_inside_a_sandbox_the_plan_starts_from_what_that_sandbox_granted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "granted" / "repo").mkdir(parents=True)
    (tmp_path / "granted" / "other").mkdir()
    monkeypatch.setenv(GRANTED_ENV, json.dumps([str(tmp_path / "granted"), "relative"]))
    assert outer_grants() == [tmp_path / "granted"]
    assert readable_roots([tmp_path / "granted" / "repo"]) == [tmp_path / "granted" / "other"]
    # A variable that says anything else means no sandbox around: the plan starts at /.
    for garbage in ("not json", '{"a": 1}', "[1, 2]", ""):
        monkeypatch.setenv(GRANTED_ENV, garbage)
        assert outer_grants() == [Path("/")]


def test_the_homes_hidden_from_a_run_are_the_users_roots_and_those_under_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "me"))
    hidden = hidden_homes()
    assert {tmp_path / "me", Path("/root"), Path("/home")} <= set(hidden)
    # A service account's HOME that is the system itself is never hidden.
    for system in ("/", "/var", "/tmp", "/usr"):
        monkeypatch.setenv("HOME", system)
        assert Path(system) not in hidden_homes()
    assert read_paths(["~/corpus", "/opt/data/"]) == (
        Path(os.path.expanduser("~/corpus")), Path("/opt/data")
    )


def _confinement(root: Path, **extra: object) -> Confinement:
    for name in ("tree", "tmp", "out", "probe", "forbidden"):
        (root / name).mkdir(exist_ok=True)
    (root / "forbidden" / "secret").write_text("the repository")
    (root / "tree" / "module.py").write_text("X = 1\n")
    return Confinement(
        tree=root / "tree",
        tmp=root / "tmp",
        out=root / "out",
        probe=root / "probe",
        forbidden=(root / "forbidden",),
        **extra,  # type: ignore[arg-type]
    )


ROOT = Path(__file__).resolve().parents[2]


def _inside(confinement: Confinement, code: str, *args: str) -> tuple[dict, dict]:
    """Run `code` in the sandbox; its JSON on stdout, and what the launcher applied."""
    plan = launch_plan(confinement, confinement.tree.parent, None)
    done, applied = launch(plan, [sys.executable, "-c", textwrap.dedent(code), *args])
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), applied


TRIES = ATTEMPT + """\
    root = sys.argv[1]
    print(json.dumps({
        "read forbidden": attempt(lambda: open(f"{root}/forbidden/secret").read()),
        "list forbidden": attempt(lambda: os.listdir(f"{root}/forbidden")),
        "write forbidden": attempt(lambda: open(f"{root}/forbidden/x", "w").close()),
        "write tree": attempt(lambda: open(f"{root}/tree/module.py", "a").close()),
        "add to tree": attempt(lambda: open(f"{root}/tree/new.py", "w").close()),
        "write tmp": attempt(lambda: open(f"{root}/tmp/x", "w").close()),
        "write out": attempt(lambda: open(f"{root}/out/report.json", "w").close()),
        "read tree": attempt(lambda: open(f"{root}/tree/module.py").read()),
        "write elsewhere": attempt(lambda: open(f"{root}/x", "w").close()),
        "read interpreter": attempt(lambda: open(os.__file__).read()),
        "write /dev/null": attempt(lambda: open("/dev/null", "w").write("x")),
    }))
"""


@needs_landlock
def test_the_suite_writes_only_its_tmp_and_out_and_cannot_read_forbidden_paths(
    tmp_path: Path,
) -> None:
    seen, applied = _inside(_confinement(tmp_path), TRIES, str(tmp_path))
    assert seen == {
        "read forbidden": "blocked",
        "list forbidden": "blocked",
        "write forbidden": "blocked",
        "write tree": "blocked",
        "add to tree": "blocked",
        "write tmp": "allowed",
        "write out": "allowed",
        "read tree": "allowed",
        "write elsewhere": "blocked",
        "read interpreter": "allowed",
        "write /dev/null": "allowed",
    }
    assert applied["landlock"]["abi"] >= 1


@needs_landlock
def test_a_sandbox_inside_a_sandbox_starts_its_command_and_keeps_both_boundaries(
    tmp_path: Path,
) -> None:
    """Ratchet's own suite runs its gate, so a sandbox is entered from inside another.
    The outer one cannot list `/` (it grants `/` minus its forbidden paths, sibling by
    sibling), so the inner plan must start from what the outer one granted: planned
    from `/` it granted nothing, not even the dynamic loader, and its command could
    not start."""
    nested = f"""
        import json, os, subprocess, sys
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from evolution.sandbox.plan import Confinement, rules
        inner = Path(sys.argv[1]) / "tmp" / "inner"
        for name in ("tree", "tmp", "out", "probe", "forbidden"):
            (inner / name).mkdir(parents=True)
        (inner / "forbidden" / "secret").write_text("the inner repository")
        (inner / "tree" / "module.py").write_text("X = 1\\n")
        confinement = Confinement(tree=inner / "tree", tmp=inner / "tmp", out=inner / "out",
                                  probe=inner / "probe", forbidden=(inner / "forbidden",))
        plan = {{"rules": rules(confinement), "keep": [], "network": "loopback"}}
        tries = {TRIES!r} + "print(open(sys.argv[2] + '/forbidden/secret').read())"
        done = subprocess.run(
            [sys.executable, "-I", "-S", {str(LAUNCHER)!r}, json.dumps(plan), "--",
             sys.executable, "-c", tries.replace("\\n    ", "\\n"), str(inner), sys.argv[1]],
            capture_output=True, text=True, timeout=60)
        print(json.dumps({{"code": done.returncode, "stdout": done.stdout,
                          "stderr": done.stderr}}))
    """
    seen, _ = _inside(_confinement(tmp_path), nested, str(tmp_path))
    lines = seen["stdout"].splitlines()
    assert lines and seen["code"] != 0, seen  # ran, then failed to read the outer secret
    assert "could not start" not in seen["stderr"]
    assert "Permission denied" in seen["stderr"] and "the repository" not in seen["stdout"]
    inner = json.loads(lines[0])
    assert inner["read forbidden"] == inner["list forbidden"] == "blocked"
    assert inner["write tree"] == inner["write elsewhere"] == "blocked"
    assert inner["read tree"] == inner["read interpreter"] == inner["write tmp"] == "allowed"


HOME_TRIES = ATTEMPT + """\
    home, private = sys.argv[1:3]
    print(json.dumps({
        "list home": attempt(lambda: os.listdir(home)),
        "read .gitconfig": attempt(lambda: open(f"{home}/.gitconfig").read()),
        "read pip.conf": attempt(lambda: open(f"{home}/.config/pip/pip.conf").read()),
        "write home": attempt(lambda: open(f"{home}/new", "w").close()),
        "read read path": attempt(lambda: open(f"{home}/data/corpus.txt").read()),
        "read secret in read path": attempt(lambda: open(f"{home}/data/.ssh/id").read()),
        "write read path": attempt(lambda: open(f"{home}/data/new", "w").close()),
        "write private home": attempt(lambda: open(f"{private}/.gitconfig", "w").close()),
        "prefix": sys.prefix,
    }))
"""


@needs_landlock
def test_a_hidden_home_is_unreadable_but_an_interpreter_and_read_paths_in_it_are_not(
    tmp_path: Path,
) -> None:
    """Landlock grants are per path: an interpreter in a home folder the run does not
    see (pyenv's, uv's, a venv in ~/src) still starts, and the policy's read paths are
    readable (minus the forbidden paths in them), while the rest of the home is not."""
    home = tmp_path / "home"
    (home / ".config" / "pip").mkdir(parents=True)
    (home / ".gitconfig").write_text("[github]\n\ttoken = planted-in-the-home\n")
    (home / ".config" / "pip" / "pip.conf").write_text("[global]\npassword = planted\n")
    (home / "data" / ".ssh").mkdir(parents=True)
    (home / "data" / "corpus.txt").write_text("words")
    (home / "data" / ".ssh" / "id").write_text("a key")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(home / "venv")],
                   check=True, timeout=60)  # fmt: skip
    python = home / "venv" / "bin" / "python"
    private = tmp_path / "private-home"
    private.mkdir()
    base = _confinement(tmp_path)
    confinement = Confinement(
        tree=base.tree, tmp=base.tmp, out=base.out, probe=base.probe,
        forbidden=(*base.forbidden, home / "data" / ".ssh"), hidden=(home,), home=private,
        read_paths=(home / "data",), command=(str(python),),
    )  # fmt: skip
    plan = {"rules": rules(confinement), "keep": [str(tmp_path)], "network": "loopback"}
    done, _ = launch(plan, [str(python), "-c", textwrap.dedent(HOME_TRIES), str(home),
                            str(private)])  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "list home": "blocked",
        "read .gitconfig": "blocked",
        "read pip.conf": "blocked",
        "write home": "blocked",
        "read read path": "allowed",
        "read secret in read path": "blocked",
        "write read path": "blocked",
        "write private home": "allowed",
        "prefix": str(home / "venv"),
    }


def test_the_gate_is_not_dumpable_once_it_starts_a_sandboxed_suite(tmp_path: Path) -> None:
    """Where a suite shares /proc with the gate (no PID namespace of its own: inside
    another sandbox, or a container whose /proc cannot be mounted), a non-dumpable gate
    keeps its environment (the keys it was started with) from a suite of its user."""
    tree = tmp_path / "tree"
    tree.mkdir()
    run = SimpleNamespace(tree=tree, tmp=tmp_path, out=tmp_path, probe=tmp_path,
                          forbidden=(), path=tmp_path, hidden=(), home=tmp_path)  # fmt: skip
    child = os.fork()
    if child == 0:  # the check changes the process for good: a child of the test's
        code = 2 if _dumpable() != 1 else 3
        try:
            sandboxed(["true"], run, Policy(), -1)  # type: ignore[arg-type]
            code = _dumpable()
        finally:
            os._exit(code)
    assert os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) == 0


def _dumpable() -> int:
    return int(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))  # PR_GET_DUMPABLE


READ_PARENT_ENVIRON = """
import ctypes, os, sys
if sys.argv[1] == "undumpable":
    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE
child = os.fork()
if child == 0:
    try:
        found = b"sk-gate-" in open("/proc/%d/environ" % os.getppid(), "rb").read()
        print("read" if found else "not there", flush=True)
    except OSError:
        print("blocked", flush=True)
    os._exit(0)
os.waitpid(child, 0)
"""


def test_a_process_of_the_same_user_cannot_read_a_non_dumpable_ones_environment() -> None:
    """What `undumpable` buys, measured on this kernel (Landlock alone does not stop a
    suite reading /proc/PARENT/environ). As an unprivileged user: root reads it anyway."""
    python = next((p for p in ("/usr/bin/python3", "/usr/local/bin/python3")
                   if os.access(p, os.X_OK)), None)  # fmt: skip
    as_user = [] if os.geteuid() != 0 else [
        "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]  # fmt: skip
    if python is None or (as_user and shutil.which("setpriv") is None):
        pytest.skip("needs a system python3 (and setpriv when run as root)")
    seen = {
        mode: subprocess.run([*as_user, python, "-I", "-c", READ_PARENT_ENVIRON, mode],
                             capture_output=True, text=True, timeout=30, check=True,
                             cwd="/", env={"GATE_API_KEY": "sk-gate-" + "7" * 16}).stdout.strip()
        for mode in ("dumpable", "undumpable")
    }  # fmt: skip
    assert seen == {"dumpable": "read", "undumpable": "blocked"}


@needs_landlock
def test_a_writable_path_of_the_policy_is_the_only_writable_part_of_the_tree(
    tmp_path: Path,
) -> None:
    (tmp_path / "tree" / "data").mkdir(parents=True)
    confinement = _confinement(tmp_path, writable=("data", "../escape"))
    seen, _ = _inside(
        confinement,
        """
        import json, sys
        root = sys.argv[1]
        result = {}
        for name in ("tree/data/out.txt", "tree/new.py", "escape"):
            try:
                open(f"{root}/{name}", "w").close()
                result[name] = "allowed"
            except OSError:
                result[name] = "blocked"
        print(json.dumps(result))
        """,
        str(tmp_path),
    )
    assert seen == {"tree/data/out.txt": "allowed", "tree/new.py": "blocked", "escape": "blocked"}


@needs_landlock
def test_network_is_loopback_only_and_loopback_works(tmp_path: Path) -> None:
    seen, applied = _inside(
        _confinement(tmp_path),
        """
        import json, socket, threading
        server = socket.create_server(("127.0.0.1", 0))
        port = server.getsockname()[1]
        threading.Thread(target=lambda: server.accept()[0].sendall(b"hi"), daemon=True).start()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            got = client.recv(2).decode()
        names = sorted(name for _, name in socket.if_nameindex())
        print(json.dumps({"loopback": got, "interfaces": names}))
        """,
    )
    if applied.get("network") != "loopback":
        pytest.skip(f"no network namespace on this host: {applied.get('namespace_error')}")
    assert seen == {"loopback": "hi", "interfaces": ["lo"]}


@needs_landlock
def test_the_suite_cannot_signal_the_gate_nor_see_run_sockets(tmp_path: Path) -> None:
    seen, applied = _inside(
        _confinement(tmp_path),
        """
        import json, os, sys
        try:
            os.kill(int(sys.argv[1]), 0)
            signal = "allowed"
        except OSError:
            signal = "blocked"
        status = open("/proc/self/status").read()
        line = next(line for line in status.splitlines() if line.startswith("CapBnd"))
        bounding = int(line.split()[1], 16)
        print(json.dumps({"signal": signal, "run": os.listdir("/run"),
                          "sys_module": bool(bounding & (1 << 16)),
                          "ptrace": bool(bounding & (1 << 19))}))
        """,
        str(os.getpid()),
    )
    if applied["landlock"]["abi"] >= 6:
        assert seen["signal"] == "blocked"
    if applied.get("run_hidden"):
        assert seen["run"] == []
    assert not seen["sys_module"] and not seen["ptrace"]


def test_a_missing_command_or_a_bad_plan_never_runs_unsandboxed(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(LAUNCHER), json.dumps({"rules": []}), "--",
         str(tmp_path / "no-such-program")],
        capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip
    if landlock_abi() < 1:
        assert done.returncode == SETUP_FAILED and "Landlock" in done.stderr
    else:
        assert done.returncode == 127 and "could not start" in done.stderr


def test_without_a_sandbox_proposals_are_refused_and_people_warned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RATCHET_SANDBOX", "none")
    with pytest.raises(EnvironmentFailure) as refused:
        choose(Policy(), automated=True, unsandboxed=False)
    assert refused.value.exit_code == 3
    assert "--unsandboxed" in (refused.value.hint or "")
    accepted = choose(Policy(), automated=True, unsandboxed=True)
    assert not accepted.sandboxed and "accepted with --unsandboxed" in accepted.describe()
    person = choose(Policy(), automated=False, unsandboxed=False)
    assert person.describe().startswith("none (") and "a person's commit" in person.describe()
    with pytest.raises(EnvironmentFailure, match="requires one"):
        choose(Policy(sandbox="required"), automated=False, unsandboxed=True)


@needs_landlock
@requires_layers("pid_namespace")
def test_nothing_the_suite_starts_outlives_it_not_even_a_new_session(tmp_path: Path) -> None:
    """A PID namespace: when the suite ends, the kernel ends every process it left,
    including one that left its process group with setsid."""
    marker = tmp_path / "tmp" / "escapee.pid"
    duration = f"300.{os.getpid()}"  # names this test's sleeper among all processes
    seen, _ = _inside(
        _confinement(tmp_path),
        """
        import json, os, subprocess, sys
        child = subprocess.Popen(["sleep", sys.argv[2]], start_new_session=True)
        open(sys.argv[1], "w").write(str(child.pid))
        print(json.dumps({"pid": os.getpid(), "processes": sorted(
            int(p) for p in os.listdir("/proc") if p.isdigit())}))
        """,
        str(marker),
        duration,
    )
    assert seen["pid"] == 2  # PID 1 is the sandbox's init
    assert seen["processes"] == [1, 2, int(marker.read_text())]
    sleepers = [p for p in Path("/proc").iterdir()
                if p.name.isdigit() and _cmdline(p) == ["sleep", duration]]  # fmt: skip
    assert sleepers == [], "the escapee outlived the suite"


def _cmdline(proc: Path) -> list[str]:
    try:
        return proc.joinpath("cmdline").read_bytes().decode().split("\0")[:-1]
    except OSError:
        return []


def test_doctor_reports_what_this_host_gives(tmp_path: Path) -> None:
    from repo_setup import run_evolve

    done = run_evolve("doctor", "--json", cwd=tmp_path)
    report = json.loads(done.stdout)
    if landlock_abi() >= 1:
        assert report["sandbox"] == "landlock" and report["landlock_abi"] >= 1
        assert report["checks"]["read_forbidden"] == "blocked"
        assert report["checks"]["write_tmp"] == "allowed"
        assert report["checks"]["read_home"] in ("blocked", "absent", "not hidden")
        assert report["checks"]["write_private_home"] == "allowed"
        # This interpreter starts and imports its packages even where it lives in the
        # home folder the suite cannot see (pyenv, uv-managed Pythons).
        assert report["checks"]["packages"] == "importable"
        assert done.returncode == (0 if not report["problems"] else 1)
    without = run_evolve("doctor", "--json", cwd=tmp_path, env={"RATCHET_SANDBOX": "none"})
    assert without.returncode == 1
    report = json.loads(without.stdout)
    assert report["sandbox"] == "none" and "--unsandboxed" in report["proposals"]
    assert run_evolve("doctor", "--network", "wifi", cwd=tmp_path).returncode == 2
