"""`evolve init` on a real project nobody here wrote, then a regression caught by the
gate: inflection 0.5.1 (MIT; a port of Rails' inflector), as its sdist ships it: one
module, one test file at the root with hundreds of tests, a setup.py and no
pyproject.toml. The sdist is fetched with pip, the registry's ordinary client, as
benchmarks/pypi.py fetches the benchmarks' (nothing of it is committed here); without
the registry the test is skipped, and says why.
"""

from __future__ import annotations

import json
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest
from repo_setup import Sandbox

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from benchmarks.pypi import FetchError, download  # noqa: E402

pytestmark = pytest.mark.e2e  # real gate runs: `pytest -m "not e2e"` skips them

NAME, VERSION = "inflection", "0.5.1"
CAMELIZE = "        return string[0].lower() + camelize(string)[1:]\n"


@pytest.fixture(scope="module")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        return download(NAME, VERSION, tmp_path_factory.mktemp("sdists"), sdist=True)
    except FetchError as error:
        pytest.skip(f"{NAME} {VERSION}'s sdist could not be fetched with pip: {error}")


def test_init_on_a_released_project_then_the_gate_catches_a_regression(
    sdist: Path, tmp_path: Path
) -> None:
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp_path, filter="data")
    box = Sandbox(tmp_path / f"{NAME}-{VERSION}")
    box.git("init", "-q", "-b", "main")
    box.commit(f"{NAME} {VERSION}, as released")

    done = box.evolve("init", "--json", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["policy"] == "ratchet.toml"
    assert tomllib.loads((box.path / "ratchet.toml").read_text()) == {
        "test_command": "python -m pytest", "evolvable": [f"{NAME}/"],
    }  # fmt: skip
    passing = report["baseline"]["passing_after"]
    assert passing > 400 and report["baseline"]["counts"].get("failed", 0) == 0
    assert box.evolve("init").stdout.startswith("nothing to do")

    source = (box.path / NAME / "__init__.py").read_text()
    assert CAMELIZE in source
    box.branch("lower-first", {f"{NAME}/__init__.py": source.replace(
        CAMELIZE, "        return string[0] + camelize(string)[1:]\n")})  # fmt: skip
    main = box.head()
    done = box.evolve("validate", "lower-first", "--json", timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    verdict = json.loads(done.stdout)
    assert [r["nodeid"] for r in verdict["regressions"]] == [
        "test_inflection.py::test_camelize_with_lower_downcases_the_first_letter"
    ]
    assert box.head() == main
    # The same regression caught as CI would see it: `evolve check` on the branch's
    # commit against main's baseline, changing nothing, naming it in JUnit.
    junit = box.path.parent / "ratchet-junit.xml"
    done = box.evolve("check", "--commit", "lower-first", "--junit", str(junit), "--json",
                      timeout=300)  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "test_camelize_with_lower_downcases_the_first_letter" in junit.read_text()
    assert box.head() == main

    # The honest look-alike: a change that keeps every test passing is merged.
    box.branch("docs", {f"{NAME}/__init__.py": source.replace(
        '\nimport re\n', '\n# Kept under the ratchet.\nimport re\n', 1)})  # fmt: skip
    done = box.evolve("validate", "docs", "--json", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["passing_after"] == passing
