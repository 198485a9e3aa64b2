"""The CI files `evolve init --ci` writes: one template per CI, shipped as package data
beside this module (`github.yml`, `gitlab.yml`) and copied as they are, so that a
template can be replaced without touching code.

Each runs on pull requests and merge-queue groups (GitHub's merge_group, GitLab's
merge-request pipelines and merge trains): part jobs install the project and Ratchet
and run `evolve check --shard I/N`, one part of the suite each; a combine job runs
`evolve check --combine` on their part files, and its exit code is the verdict, its
`ratchet-junit.xml` the report. The GitHub workflow also advances the shared baseline
after the queue merged a group (when the repository variable RATCHET_BASELINE is
`ref`). Both are tested: actionlint and gitlab-ci-local (tests/ci/).
"""

from __future__ import annotations

from importlib import resources

# Where each CI reads its configuration from, in the repository.
TARGETS = {"github": ".github/workflows/ratchet.yml", "gitlab": ".gitlab-ci.yml"}
NAMES = {"github": "GitHub Actions", "gitlab": "GitLab CI"}


def template(ci: str) -> str:
    """The text of the template for `ci` (a key of TARGETS)."""
    return (resources.files(__name__) / f"{ci}.yml").read_text(encoding="utf-8")
