"""The sandbox works wherever Python and the repository live (invariant 18).

The launcher covers the host's /tmp with an empty one; what a run needs to start (its
interpreter, the packages `.pth` files point at, its run folder) is bound back at its own
path, read-only, and nothing else of the host's /tmp is seen. Before that, a virtual
environment or a checkout under /tmp (tox, nox, CI workspaces, the usual place to try
something) could not even start its interpreter inside the sandbox.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest
from host_layers import requires_layers
from launcher import ATTEMPT, launch
from repo_setup import Sandbox

from evolution.sandbox.enter import landlock_abi
from evolution.sandbox.plan import (
    Confinement,
    interpreter_paths,
    launch_plan,
    reachable,
    start_failure,
)

needs_landlock = pytest.mark.skipif(landlock_abi() < 1, reason="this kernel has no Landlock")
needs_private_tmp = requires_layers("scratch_private")


def _venv_under_tmp(root: Path, library: Path | None = None) -> Path:
    """A virtual environment under the temporary folder that uses this interpreter's
    packages (an `import site; site.addsitedir(...)` line, so their own `.pth` files, the
    editable install of Ratchet's among them, are read too), and optionally puts
    `library` on the path with a plain `.pth` folder line, as an editable install does.
    Its interpreter; a venv made from a venv is made from the base Python."""
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = Path(
        sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)})
    )
    ours = sysconfig.get_path("purelib")
    lines = [f"import site; site.addsitedir({ours!r})"]
    if library is not None:
        lines.append(str(library))
    (purelib / "outer.pth").write_text("\n".join(lines) + "\n")
    return venv / "bin" / "python"


def _library(root: Path) -> Path:
    """A package outside any site folder, found through a `.pth` line."""
    folder = root / "lib"
    (folder / "helperlib").mkdir(parents=True)
    (folder / "helperlib" / "__init__.py").write_text("def triple(x):\n    return 3 * x\n")
    return folder


@needs_landlock
def test_a_venv_under_the_temporary_folder_runs_the_gate_and_accepts_a_neutral_branch(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Fails without the fix: `could not start '/tmp/.../venv/bin/python': No such file
    or directory`, then 'the gate's probe did not run'."""
    assert str(tmp_path).startswith(("/tmp/", "/var/tmp/")) or "TMPDIR" in os.environ
    python = _venv_under_tmp(tmp_path, _library(tmp_path))
    sandbox.commit("a test of the library", {"tests/test_lib.py": textwrap.dedent("""\
        from helperlib import triple


        def test_triple():
            assert triple(2) == 6
    """)})  # fmt: skip
    env = {**os.environ, "NO_COLOR": "1"}

    def evolve(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(python), "-m", "evolution.cli", *args], cwd=sandbox.path, env=env,
            capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip

    record = evolve("baseline", "record", "--reruns", "0")
    assert record.returncode == 0, record.stderr + record.stdout
    passing = sandbox.baseline()["tests"]
    assert passing["tests/test_lib.py::test_triple"] == "passed"
    sandbox.branch("evolve/neutral", {"scripts/notes.py": "NOTE = 'neutral'\n"}, proposal=True)
    done = evolve("validate", "evolve/neutral", "--json")
    verdict = json.loads(done.stdout)
    assert done.returncode == 0, done.stderr + done.stdout
    assert verdict["verdict"] == "accepted" and verdict["regressions"] == []
    doctor = evolve("doctor", "--json")
    report = json.loads(doctor.stdout)
    assert report["checks"]["packages"] == "importable", report
    assert not [p for p in report["problems"] if "interpreter" in p or "packages" in p]


PEEK = ATTEMPT + """\
    venv, sibling = sys.argv[1:3]
    print(json.dumps({
        "read venv": attempt(lambda: open(os.path.join(venv, "pyvenv.cfg")).read()),
        "write venv": attempt(lambda: open(os.path.join(venv, "new"), "w").close()),
        "read sibling": attempt(lambda: open(sibling).read()),
        "sibling exists": os.path.exists(sibling),  # Landlock alone would not hide it
    }))
"""


def _confinement(root: Path, **extra: object) -> Confinement:
    run = root / "run"
    for name in ("tree", "tmp", "out", "probe"):
        (run / name).mkdir(parents=True)
    (root / "forbidden").mkdir()
    return Confinement(
        tree=run / "tree", tmp=run / "tmp", out=run / "out", probe=run / "probe",
        forbidden=(root / "forbidden",), **extra,  # type: ignore[arg-type]
    )  # fmt: skip


@needs_landlock
@needs_private_tmp
def test_only_what_the_run_needs_of_the_hosts_tmp_is_seen_and_it_is_read_only(
    tmp_path: Path,
) -> None:
    python = _venv_under_tmp(tmp_path)
    (tmp_path / "sibling.txt").write_text("another user's file in /tmp")
    confinement = _confinement(tmp_path, command=(str(python),))
    plan = launch_plan(confinement, confinement.tree.parent, None)
    done, applied = launch(
        plan, [str(python), "-c", textwrap.dedent(PEEK), str(python.parent.parent),
               str(tmp_path / "sibling.txt")],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["read venv"] == "allowed"
    assert seen["write venv"] == "blocked"
    assert seen["read sibling"] == "blocked"
    assert seen["sibling exists"] is False  # a private /tmp: only what was bound back is there
    assert applied["scratch_private"] is True and "kept_read_only_error" not in applied


@needs_landlock
@needs_private_tmp
def test_a_command_the_sandbox_hides_is_named_before_anything_else(tmp_path: Path) -> None:
    """The launcher says which program could not start and which folder hides it, on its
    status channel, so the gate's first line is the cause, not 'the probe did not run'."""
    python = _venv_under_tmp(tmp_path)
    confinement = _confinement(tmp_path)  # the venv is not the command's: nothing keeps it
    plan = {**launch_plan(confinement, confinement.tree.parent, None)}
    plan["keep"] = [[path, mode] for path, mode in plan["keep"] if "venv" not in path]
    done, applied = launch(plan, [str(python), "-c", "print('started')"])
    assert done.returncode == 127 and "started" not in done.stdout
    assert applied["exec_error"]["path"] == str(python)
    message = start_failure(applied)
    assert message is not None and message.startswith(
        "the test command could not start inside the sandbox"
    )
    assert str(python) in message and str(tmp_path) in message
    assert "is not visible inside it" in message


def test_a_program_that_does_not_exist_anywhere_is_not_blamed_on_the_sandbox(
    tmp_path: Path,
) -> None:
    confinement = _confinement(tmp_path)
    plan = launch_plan(confinement, confinement.tree.parent, None)
    done, applied = launch(plan, [str(tmp_path / "no-such-python")])
    if landlock_abi() < 1:
        pytest.skip("this kernel has no Landlock: the launcher refuses before the exec")
    message = start_failure(applied)
    assert done.returncode == 127 and message is not None
    assert "No such file or directory" in message and "not visible" not in message


def test_pth_folders_are_reachable_unless_they_reveal_a_forbidden_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An editable install's `.pth` points at its source: reachable (and bound back under
    /tmp) for a library, never for the user's checkout, which would shadow the tree."""
    site_dir, library, checkout = tmp_path / "site", tmp_path / "lib", tmp_path / "checkout"
    for folder in (site_dir, library, checkout / "src"):
        folder.mkdir(parents=True)
    (site_dir / "a.pth").write_text(f"# a comment\n{library}\nimport os\n{checkout / 'src'}\n")
    (site_dir / "b.pth").write_text(f"{tmp_path}\n")  # holds the checkout: never granted
    monkeypatch.setattr("evolution.sandbox.plan.site_folders", lambda: [str(site_dir)])
    confinement = Confinement(
        tree=tmp_path / "t", tmp=tmp_path / "x", out=tmp_path / "o", probe=tmp_path / "p",
        forbidden=(checkout,),
    )  # fmt: skip
    reach = [str(p) for p in reachable(confinement)]
    assert str(library) in reach
    assert str(checkout / "src") not in reach and str(tmp_path) not in reach


def test_the_interpreter_paths_name_a_test_commands_own_virtual_environment(
    tmp_path: Path,
) -> None:
    python = _venv_under_tmp(tmp_path)
    paths = {str(p) for p in interpreter_paths((str(python),))}
    assert str(python.parent.parent) in paths  # the venv, with its pyvenv.cfg
    home = next(
        line.split("=", 1)[1].strip()
        for line in (python.parent.parent / "pyvenv.cfg").read_text().splitlines()
        if line.startswith("home")
    )
    assert str(Path(home).parent) in paths  # the Python it was made from
