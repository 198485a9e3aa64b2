"""Derive `mutate`'s per-operator priors from real one-line changes in PyPI releases.

How often does a person's one-line fix take each operator's shape? The corpus is the
history of popular pure-Python packages as PyPI publishes it: for each package, the
consecutive *patch* releases (same major.minor, the releases projects cut to fix bugs),
their wheels diffed file by file (tests and vendored code left out). A change counts
when it is isolated: one line replaced, inserted or deleted, in a file whose diff
between the two releases is at most MAX_FILE_CHANGES lines, changing the syntax tree
beyond string literals (comments, formatting, messages and version strings are not
fixes). Each change is then tried against the operators themselves: every mutant of
the old file at that line is compared (blanks ignored) with the old file plus that one
change; every operator that reproduces it gets an equal share of the change. Changes
no operator reproduces are counted too: that is the operators' reach.

The prior of an operator is its share of all counted changes, smoothed by
PSEUDO_COUNT imagined changes per operator (a Dirichlet prior): the corpus reproduces
only tens of changes, so a handful of them may reorder the operators but not silence
one (an operator that never matched a release diff still fixed real bugs elsewhere). Release diffs
are not all bug fixes (a patch release also carries refactors), which is the price of
needing nothing but the registry; TSSB-3M's counts (Richter & Wehrheim, MSR 2022) are
printed beside ours for comparison where the kinds line up.

Usage: .venv/bin/python benchmarks/derive_priors.py [--cache DIR] [--pairs N] [--out PATH]
It downloads wheels with pip (a few hundred, cached in --cache) and writes the table
that evolution/mutate/priors.json holds.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import itertools
import json
import re
import sys
import tempfile
import zipfile
from collections import Counter
from dataclasses import replace
from pathlib import Path

from pypi import FetchError, download, final_versions

from evolution.mutate.operators import OPERATORS, mutations
from evolution.mutate.source import apply_edits

HERE = Path(__file__).resolve().parent.parent
TABLE = HERE / "evolution" / "mutate" / "priors.json"
MAX_FILE_CHANGES = 12
PSEUDO_COUNT = 10
PACKAGES = (
    "requests", "urllib3", "idna", "six", "attrs", "click", "jinja2", "itsdangerous",
    "werkzeug", "flask", "packaging", "pyparsing", "python-dateutil", "pytz", "toolz",
    "more-itertools", "cachetools", "tabulate", "colorama", "jsonschema", "decorator",
    "boltons", "sortedcontainers", "tomli", "tomlkit", "pluggy", "iniconfig", "pathspec",
    "platformdirs", "filelock", "distlib", "sqlparse", "humanize", "arrow", "marshmallow",
    "bleach", "html5lib", "mistune", "markdown", "pyflakes", "pycodestyle", "isort", "rsa",
    "pyasn1", "oauthlib", "httplib2", "wcwidth", "tqdm", "parso", "jedi", "docutils",
    "pygments", "virtualenv", "requests-toolbelt", "jmespath", "s3transfer", "pyjwt",
    "python-slugify", "semver", "inflection", "natsort", "pytest", "soupsieve",
    "beautifulsoup4", "cssselect", "chardet", "zipp", "importlib-metadata",
    "typing-extensions", "fsspec", "pyyaml", "babel", "cattrs", "itemadapter", "parsel",
    "w3lib",
)  # fmt: skip
HEADER = re.compile(r"^\s*(import|from|def|async def|class|@)\s?", re.M)
SKIPPED_PATH = re.compile(r"(^|/)(tests?|testing|_vendor|vendor|vendored|_vendored)/|"
                          r"(^|/)(test_[^/]*|[^/]*_test|conftest)\.py$")


def patch_pairs(versions: list[str], limit: int) -> list[tuple[str, str]]:
    """Consecutive releases of one major.minor series, the newest `limit`."""
    pairs = [(a, b) for a, b in itertools.pairwise(versions)
             if a.split(".")[:2] == b.split(".")[:2]]
    return pairs[-limit:]


def sources(wheel: Path) -> dict[str, str]:
    found = {}
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.endswith(".py") and not SKIPPED_PATH.search(name):
                try:
                    found[name] = archive.read(name).decode("utf-8")
                except UnicodeDecodeError:
                    continue
    return found


def _behaviour(tree: ast.AST) -> str:
    """The tree without what does not change behaviour: strings (messages, docstrings)
    and annotations."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            node.value = ""
        elif isinstance(node, ast.arg):
            node.annotation = None
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            node.returns = None
        elif isinstance(node, ast.AnnAssign):
            node.annotation = ast.Constant(None)
    return ast.dump(tree)


def _in_function_body(tree: ast.AST, line: int) -> bool:
    return any(isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
               and node.body[0].lineno <= line <= (node.end_lineno or 0)
               for node in ast.walk(tree))


def one_line_changes(old: str, new: str) -> list[tuple[int, str, str]]:
    """Isolated one-line changes inside function bodies from `old` to `new`: (line of
    old where it applies, old with that change alone applied, the change's text)."""
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    opcodes = [op for op in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
               if op[0] != "equal"]
    changed = sum(max(i2 - i1, j2 - j1) for _, i1, i2, j1, j2 in opcodes)
    if changed > MAX_FILE_CHANGES:
        return []
    found = []
    for tag, i1, i2, j1, j2 in opcodes:
        if max(i2 - i1, j2 - j1) != 1 or (tag == "replace" and i2 - i1 != j2 - j1):
            continue
        text = "".join(b[j1:j2]) + "".join(a[i1:i2])
        if "__version__" in text or HEADER.search(text):
            continue
        after = "".join(a[:i1] + b[j1:j2] + a[i2:])
        try:
            before_tree = ast.parse(old)
            if not _in_function_body(before_tree, i1 + 1):
                continue
            if _behaviour(before_tree) == _behaviour(ast.parse(after)):
                continue
        except SyntaxError:
            continue
        found.append((i1 + 1, after, _squash(text)))
    return found


def _squash(text: str) -> str:
    return "".join(text.split())


def reproducing(old: str, line: int, after: str) -> set[str]:
    """The operators with a mutant of `old` near `line` equal to `after`."""
    target = _squash(after)
    operators = set()
    lines = {line - 1, line, line + 1}
    try:
        candidates = list(mutations(old, lines))
    except (SyntaxError, RecursionError, ValueError):
        return set()
    for edit in candidates:
        if edit.operator in operators:
            continue
        if edit.operator == "delete":  # `pass` keeps a mutant's block; a person deletes
            edit = replace(edit, text="")
        if _squash(apply_edits(old, [edit])) == target:
            operators.add(edit.operator)
    return operators


def derive(cache: Path, pairs_per_package: int) -> dict[str, object]:
    credit: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    counted = unexpressed = 0
    used: dict[str, list[str]] = {}
    for name in PACKAGES:
        seen: set[str] = set()
        try:
            versions = final_versions(name)
        except FetchError as error:
            print(f"skip {name}: {error}", file=sys.stderr)
            continue
        for old_v, new_v in patch_pairs(versions, pairs_per_package):
            try:
                old_files = sources(download(name, old_v, cache / name, sdist=False))
                new_files = sources(download(name, new_v, cache / name, sdist=False))
            except (FetchError, zipfile.BadZipFile) as error:
                print(f"skip {name} {old_v}..{new_v}: {error}", file=sys.stderr)
                continue
            used.setdefault(name, []).append(f"{old_v}..{new_v}")
            for path in sorted(set(old_files) & set(new_files)):
                if old_files[path] == new_files[path]:
                    continue
                try:
                    changes = one_line_changes(old_files[path], new_files[path])
                except SyntaxError:
                    continue
                for line, after, text in changes:
                    if text in seen:  # the same edit made in many places is one change
                        continue
                    seen.add(text)
                    counted += 1
                    kinds = reproducing(old_files[path], line, after)
                    if not kinds:
                        unexpressed += 1
                    for kind in kinds:
                        credit[kind] += 1 / len(kinds)
                        examples.setdefault(kind, []).append(
                            f"{name} {old_v}..{new_v} {path}:{line}")
        print(f"{name}: {counted} changes so far, {unexpressed} unexpressed", file=sys.stderr)
    smoothed = counted + PSEUDO_COUNT * len(OPERATORS)
    return {
        "source": ("isolated one-line changes between consecutive patch releases of "
                   f"{len(used)} popular pure-Python packages on PyPI (wheels), "
                   "derived by benchmarks/derive_priors.py"),
        "changes": counted,
        "expressed": counted - unexpressed,
        "counts": {op: round(credit[op], 2) for op in OPERATORS},
        "priors": {op: round((credit[op] + PSEUDO_COUNT) / smoothed, 5) for op in OPERATORS},
        "pseudo_count": PSEUDO_COUNT,
        "examples": {op: examples.get(op, [])[:3] for op in OPERATORS},
        "releases": used,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=None, help="where wheels are kept")
    parser.add_argument("--pairs", type=int, default=10, help="release pairs per package")
    parser.add_argument("--out", type=Path, default=TABLE)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="priors-") as scratch:
        table = derive(args.cache or Path(scratch), args.pairs)
    args.out.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{table['changes']} one-line changes, {table['expressed']} expressed by an "
          f"operator; written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
