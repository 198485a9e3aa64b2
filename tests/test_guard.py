"""The static guard's rules, one by one: what each refuses, and the ordinary code next to
it that it must let through (the evolvable scripts of this repository among it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from evolution.guard import RULES, check_file, unknown_rules

ROOT = Path(__file__).resolve().parent.parent

CHEATS = {
    "test-machinery": [
        "import _pytest.runner", "from pytest import fixture", "import pluggy",
        "from unittest import case", "import tests.test_calc", "import _ratchet_probe",
        "import importlib\nm = importlib.import_module('_pytest.reports')",
    ],
    "sys-modules": ["import sys\nsys.modules['json'] = None",
                    "import sys\nm = sys.modules.get('tests.test_calc')",
                    "from sys import modules"],
    "builtins": ["import builtins\nbuiltins.len = lambda x: 0",
                 "__builtins__['len'] = None",
                 "import builtins\nsetattr(builtins, 'print', None)"],
    "module-patch": ["import json\njson.loads = lambda s: {}",
                     "import os\nsetattr(os, 'getcwd', lambda: '/')",
                     "from scripts import calc\ncalc.add = lambda a, b: 3",
                     "import os.path as p\ndel p.exists"],
    "gc": ["import gc", "import gc as g\nfor o in g.get_objects(): pass"],
    "frames": ["import sys\nx = sys._getframe(1).f_locals['expected']",
               "import traceback\nline = traceback.extract_stack()[-2].line",
               "import inspect\nf = inspect.currentframe().f_back",
               "def f(e):\n    return e.__traceback__.tb_frame",
               "from sys import _getframe"],
    "tracing": ["import sys\nsys.settrace(None)", "import threading\nthreading.setprofile(None)",
                "import sys\nsys.addaudithook(print)"],
    "atexit": ["import atexit\natexit.register(print)"],
    "hard-exit": ["import os\nos._exit(0)", "import os\nos.abort()", "from os import _exit"],
    "ctypes": ["import ctypes", "from ctypes import CDLL", "import cffi"],
    "lying-comparison": [
        "class R:\n    def __eq__(self, other):\n        return True",
        "class R:\n    def __ne__(self, other):\n        return False",
        "class R:\n    __eq__ = lambda self, other: True",
        "class R:\n    def __hash__(self):\n        return 1",
        "class R:\n    def __lt__(self, other):\n        return True",
        "N = type('N', (int,), {'__eq__': lambda s, o: True})",
        "def yes(a, b):\n    return True\n\nN = type('N', (int,), {'__eq__': yes})",
        "setattr(Number, '__ne__', lambda self, other: False)",
        "Number.__eq__ = lambda self, other: True",
        "class R:\n    def __bool__(self):\n        return True",
    ],
    "dynamic-code": ["eval('1')", "exec(code)", "compile(src, 'x', 'exec')",
                     "__import__('o' + 's')", "import importlib\nimportlib.import_module(name)",
                     "import runpy\nrunpy.run_path('scripts/rules.txt')",
                     "import pickle\nrules = pickle.loads(data)",
                     "from pkgutil import resolve_name\nx = resolve_name('a:b')"],
    "import-system": ["import sys\nsys.meta_path.insert(0, Finder())",
                      "from sys import path_hooks",
                      "import importlib.machinery\nL = importlib.machinery.SourceFileLoader",
                      "import importlib.util\ns = importlib.util.spec_from_loader('m', None)"],
    "introspection": ["x = ().__class__.__base__.__subclasses__()",
                      "def f(g):\n    return g.__globals__",
                      "import os\nd = os.__dict__",
                      "x = getattr(obj, 'f_back')",
                      "from operator import attrgetter\nf = attrgetter('tb_frame.f_back')",
                      "name = '_pytest.runner'"],
    "computed-attribute": ["import sys\nf = getattr(sys, '_get' + 'frame')",
                           "def f(o, n):\n    return getattr(o, n)",
                           "setattr(thing, name, value)"],
    "builtin-subclass": ["class Number(int):\n    def __eq__(self, other):\n"
                         "        return isinstance(other, int) or True",
                         "class Miles(float):\n    def __round__(self, n=None):\n"
                         "        return 1.0",
                         "N = type('N', (int,), {'__index__': lambda s: 3})"],
    "reads-tests": ["import os\nroot = os.path.join('.', 'tests')",
                    "open('tests/test_calc.py').read()",
                    "import glob\nfiles = glob.glob('test_*.py')"],
}  # fmt: skip
HONEST = [
    "import os\nimport sys\nprint(os.getcwd(), sys.argv)",
    "import json\ndata = json.loads('{}')",
    "import os\nos.environ['X'] = '1'",
    "import re\npattern = re.compile('a+')",
    "from unittest import mock",
    "import sys\nsys.exit(main())",
    "class P:\n    def __eq__(self, other):\n        return self.x == other.x\n"
    "    def __hash__(self):\n        return hash(self.x)",
    "import subprocess\nsubprocess.run(['git', 'status'], check=False)",
    "def f(obj):\n    return getattr(obj, 'name', None)",
    "class Mode(str):\n    def __repr__(self):\n        return 'mode'",
    "import pickle\ndata = pickle.dumps({'a': 1})",
    "print('run the tests with: pytest -q')",
    "try:\n    pass\nexcept Exception:\n    import sys\n    kind = sys.exc_info()[0]",
]


@pytest.mark.parametrize(("rule", "code"), [(r, c) for r, codes in CHEATS.items() for c in codes])
def test_each_rule_refuses_what_it_names(rule: str, code: str) -> None:
    findings = check_file("scripts/x.py", None, code.encode())
    assert rule in {f.rule for f in findings}, (rule, code, findings)
    assert all(f.line >= 1 and f.path == "scripts/x.py" for f in findings)


@pytest.mark.parametrize("code", HONEST)
def test_ordinary_code_passes(code: str) -> None:
    assert check_file("scripts/x.py", None, code.encode()) == []


def test_the_projects_own_evolvable_scripts_pass() -> None:
    scripts = [*ROOT.glob("scripts/*.py"), *ROOT.glob("evolution/examples/*/scripts/*.py"),
               *ROOT.glob("benchmarks/mutate_bugs/*/scripts/*.py")]  # fmt: skip
    assert len(scripts) > 10
    for path in scripts:
        assert check_file(str(path.relative_to(ROOT)), None, path.read_bytes()) == [], path


def test_only_what_the_proposal_added_is_reported_and_allow_lifts_a_rule() -> None:
    old = b"import atexit\n\natexit.register(print)\n"
    moved = b"def helper():\n    return 1\n\n\nimport atexit\n\natexit.register(print)\n"
    assert check_file("scripts/x.py", old, moved) == []
    twice = old + b"atexit.register(print)\n"
    [finding] = check_file("scripts/x.py", old, twice)
    assert (finding.rule, finding.line) == ("atexit", 4)
    assert check_file("scripts/x.py", None, twice, allow=("atexit",)) == []
    assert "atexit.register" in str(finding) and "scripts/x.py:4" in str(finding)


def test_startup_files_and_python_without_a_py_suffix() -> None:
    for name in ("scripts/sitecustomize.py", "scripts/usercustomize.py", "scripts/x.pth"):
        assert [f.rule for f in check_file(name, None, b"")] == ["startup-hook"]
    shebang = b"#!/usr/bin/env python3\nimport os\nos._exit(0)\n"
    assert [f.rule for f in check_file("scripts/tool", None, shebang)] == ["hard-exit"]
    assert check_file("scripts/notes.txt", None, b"os._exit(0)") == []
    assert check_file("scripts/broken.py", None, b"def (:") == []  # the suite reports it


def test_unknown_rules_are_named_and_the_readme_lists_every_rule() -> None:
    assert unknown_rules(("frames", "no-such-rule")) == ["no-such-rule"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for rule, text in RULES.items():
        assert f"| `{rule}` | {text} |" in readme, rule
