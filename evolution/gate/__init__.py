"""The gate: whether a candidate may reach main.

`validate` is `evolve validate`; the checks that refuse before any test, the judge that
compares a run with the baseline, the staged verdict and its test map, the verdict
cache, the landing on main, the safety net after a merge, the baseline's recording and
the git hooks that call all of this. It uses `evolution.run` to test a tree and
`evolution.trail` to leave its words in git; neither of those imports it.
"""
