"""The CI files `evolve init --ci` writes: shipped as package data, valid YAML, and each
a job that installs the project and Ratchet and runs `evolve check` with its JUnit
report, on the events a merge queue uses. (Linting them with actionlint and running
the GitLab job locally belong with the full templates.)"""

from __future__ import annotations

from importlib import resources

import pytest
import yaml

from evolution.ci import NAMES, TARGETS, template

CHECK = "evolve check --junit ratchet-junit.xml"


@pytest.mark.parametrize("ci", sorted(TARGETS))
def test_every_template_is_shipped_and_runs_evolve_check(ci: str) -> None:
    assert (resources.files("evolution.ci") / f"{ci}.yml").is_file()
    assert ci in NAMES
    text = template(ci)
    assert CHECK in text and f"evolve init --ci {ci}" in text
    assert isinstance(yaml.safe_load(text), dict)


def test_the_github_workflow_runs_on_pull_requests_and_merge_groups() -> None:
    workflow = yaml.safe_load(template("github"))
    assert set(workflow[True]) == {"pull_request", "merge_group"}  # YAML 1.1 reads `on` as True
    steps = workflow["jobs"]["ratchet"]["steps"]
    assert steps[0]["uses"].startswith("actions/checkout@")
    assert steps[0]["with"]["fetch-depth"] == 0
    assert any(step.get("run") == CHECK for step in steps)
    assert TARGETS["github"] == ".github/workflows/ratchet.yml"


def test_the_gitlab_job_runs_on_merge_requests_and_reports_junit() -> None:
    job = yaml.safe_load(template("gitlab"))["ratchet"]
    assert job["script"][-1] == CHECK
    assert job["artifacts"]["reports"]["junit"] == "ratchet-junit.xml"
    assert job["variables"]["GIT_DEPTH"] == "0"
    assert "merge_request_event" in job["rules"][0]["if"]
    assert TARGETS["gitlab"] == ".gitlab-ci.yml"
