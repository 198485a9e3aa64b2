"""The CI files `evolve init --ci` writes: one template per CI, shipped as package data
beside this module (`github.yml`, `gitlab.yml`) and copied as they are, so that a
template can be replaced without touching code.

Each installs the project and Ratchet and runs `evolve check --junit ratchet-junit.xml`
on the pull request's (or merge-queue group's) commit: the verdict is the job's exit
code, the JUnit file its report.
"""

from __future__ import annotations

from importlib import resources

# Where each CI reads its configuration from, in the repository.
TARGETS = {"github": ".github/workflows/ratchet.yml", "gitlab": ".gitlab-ci.yml"}
NAMES = {"github": "GitHub Actions", "gitlab": "GitLab CI"}


def template(ci: str) -> str:
    """The text of the template for `ci` (a key of TARGETS)."""
    return (resources.files(__name__) / f"{ci}.yml").read_text(encoding="utf-8")
