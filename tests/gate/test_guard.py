"""The static guard's rules, one by one: what each refuses, and the ordinary code next to
it that it must let through (the evolvable scripts of this repository among it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from evolution.gate.guard import RULES, check_file, unknown_rules

ROOT = Path(__file__).resolve().parents[2]

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


def test_unknown_rules_are_named_and_the_threat_model_lists_every_rule() -> None:
    assert unknown_rules(("frames", "no-such-rule")) == ["no-such-rule"]
    page = (ROOT / "docs" / "explanation" / "threat-model.md").read_text(encoding="utf-8")
    for rule, text in RULES.items():
        assert f"| `{rule}` | {text} |" in page, rule


# -- issue 24, item 4: rules on what names refer to, not on how they are spelled ----------------
#
# Each attack is written as a proposal by someone who has read the guard: the regression
# (`add` returns a - b) is real, and the code that hides it reaches the same objects as
# round 1's cheats through spellings the old rules did not know. Each names the rules
# that must be among the findings. Each class has its legitimate look-alikes, which must
# produce no finding at all.

_SWAP = "def _noop(*a, **k):\n    return None\n\n\ndef add(a, b):\n    return a - b\n"

# (rule, a fragment of the construct the finding names): the finding that shows the name
# was resolved, not one a spelling elsewhere in the attack would give.
ALIASED_REFLECTION = {
    # a builtin reached as an attribute of the builtins module, under an alias, with the
    # attribute name spelled in pieces
    "builtins-module-alias": ({("introspection", "setattr(…, '__code__')")}, _SWAP + (
        "import builtins as _rt\n\n\ndef _warm(test):\n    key = '__co' + 'de__'\n"
        "    _rt.setattr(test, key, _rt.getattr(_noop, key))\n"
    )),
    # attrgetter imported under another name, the attribute path joined from a list
    "attrgetter-alias-joined-name": ({("introspection", "getattr(…, 'tb_frame')"),
                                      ("introspection", "getattr(…, 'f_back')")}, _SWAP + (
        "from operator import attrgetter as _field\n\n\ndef _peek(err):\n"
        "    return _field('.'.join(['tb_' + 'fra' + 'me', 'f_' + 'back']))(err)\n"
    )),
    # sys under another name, its modules table reached through the module's namespace
    "sys-alias-through-its-namespace": ({("sys-modules", "sys.modules")}, _SWAP + (
        "import sys as _s\n\n_registry = vars(_s)['mod' + 'ules']\n"
    )),
    # `from sys import modules` under another name, used far away through .get
    "from-import-alias": ({("sys-modules", "from sys import modules")}, _SWAP + (
        "from sys import modules as _loaded\n\n\ndef _find(name):\n"
        "    return _loaded.get(name)\n"
    )),
    # a builtin bound to a module-level name, chained, then called with a decoded name
    "getattr-rebound-and-chained": ({("introspection", "getattr(…, '__code__')"),
                                     ("computed-attribute", "handed on")}, _SWAP + (
        "import base64\n\n_g = getattr\n_h = _g\n\n\ndef _code(fn):\n"
        "    return _h(fn, base64.b64decode('X19jb2RlX18=').decode())\n"
    )),
    # the builtin fetched out of the builtins namespace by a name read backwards
    "builtin-out-of-vars": ({("introspection", "getattr(…, '__code__')")}, _SWAP + (
        "import builtins\n\n\ndef _code(fn):\n"
        "    fetch = vars(builtins)['rttateg'[::-1]]\n"
        "    return fetch(fn, ''.join(map(chr, [95, 95, 99, 111, 100, 101, 95, 95])))\n"
    )),
    # __builtins__ out of the module's own globals, through a computed key
    "builtins-from-globals": ({("computed-attribute", "[<computed>]"),
                               ("introspection", "'__builtins__'")}, _SWAP + (
        "def _b():\n    return globals()['__buil' + 'tins__']\n"
    )),
    # object.__setattr__ with an f-string name, the value read through the bound
    # __getattribute__ of the function
    "object-setattr-fstring": ({("introspection", "__setattr__(…, '__code__')"),
                                ("introspection", "__getattribute__(…, '__code__')")}, _SWAP + (
        "def _swap(test):\n    part = 'code'\n    key = f'__{part}__'\n"
        "    object.__setattr__(test, key, _noop.__getattribute__(key))\n"
    )),
    # a bound __getattribute__ of the function, name built with % and rot13
    "bound-getattribute-rot13": ({("introspection", "'__globals__'")}, _SWAP + (
        "import codecs\n\n\ndef _g(fn):\n    get = fn.__getattribute__\n"
        "    return get('__%s__' % codecs.decode('tybonyf', 'rot13'))\n"
    )),
    # functools.partial of getattr, the name from bytes
    "partial-of-getattr": ({("introspection", "getattr(…, '__closure__')")}, _SWAP + (
        "import functools\n\n\ndef _closure(fn):\n    read = functools.partial(getattr, fn)\n"
        "    return read(bytes([95, 95, 99, 108, 111, 115, 117, 114, 101, 95, 95]).decode())\n"
    )),
    # methodcaller calling __setattr__ on the test, every name built
    "methodcaller-setattr": ({("introspection", "__setattr__(…, '__code__')")}, _SWAP + (
        "import operator\n\n\ndef _swap(test, code):\n"
        "    operator.methodcaller('__set' + 'attr__', '__c' + 'ode__', code)(test)\n"
    )),
    # the module reached as another module's attribute, imported by a built name
    "sys-through-os-and-import-module": ({("sys-modules", "sys.modules")}, _SWAP + (
        "import importlib\n\n_m = importlib.import_module('o' + 's').sys.modules\n"
    )),
    # sys as another module's private import, the frame function through it
    "sys-as-threadings-private-import": ({("frames", "sys._getframe")}, _SWAP + (
        "import threading\n\n\ndef _caller():\n    return threading._sys._getframe(2)\n"
    )),
    # getattr handed to a helper: where it goes cannot be seen
    "getattr-handed-on": ({("computed-attribute", "getattr handed on")}, _SWAP + (
        "def _apply(f, *args):\n    return f(*args)\n\n\ndef _code(fn, name):\n"
        "    return _apply(getattr, fn, name)\n"
    )),
}  # fmt: skip

RUNS_LATER = {
    # a helper called at import starts a daemon thread that swaps a test's code later
    "thread-from-a-helper-called-at-import": _SWAP + (
        "import threading as _t\nimport time\n\n\ndef _later():\n    time.sleep(0.2)\n\n\n"
        "def _boot():\n    worker = _t.Thread(target=_later, daemon=True)\n"
        "    worker.start()\n\n\n_boot()\n"
    ),
    # a Thread subclass whose instance is started at import, no `threading.Thread(` in sight
    "thread-subclass-started-at-import": _SWAP + (
        "from threading import Thread as _Base\n\n\nclass _Warmer(_Base):\n"
        "    def __init__(self):\n        super().__init__(daemon=True)\n\n"
        "    def run(self):\n        pass\n\n\n_w = _Warmer()\n_w.start()\n"
    ),
    # a decorator (run at import by decorating) that starts a timer
    "timer-started-by-a-decorator": _SWAP + (
        "import threading\n\n\ndef _cached(fn):\n"
        "    threading.Timer(0.1, lambda: None).start()\n    return fn\n\n\n"
        "@_cached\ndef mul(a, b):\n    return a * b\n"
    ),
    # a signal handler and an interval timer: the handler runs in the middle of a test
    "signal-handler-and-itimer": _SWAP + (
        "import signal as _sig\n\n_sig.signal(_sig.SIGALRM, lambda *a: None)\n"
        "_sig.setitimer(_sig.ITIMER_REAL, 0.05)\n"
    ),
    # a finalizer on an object that dies when the collector gets to it
    "weakref-finalize": _SWAP + (
        "import weakref\n\n\nclass _Anchor:\n    pass\n\n\n_a = _Anchor()\n"
        "weakref.finalize(_a, print)\n"
    ),
    # an instance of a class with __del__, in a reference cycle made at import
    "del-in-a-cycle-made-at-import": _SWAP + (
        "class _Node:\n    def __init__(self):\n        self.me = self\n\n"
        "    def __del__(self):\n        pass\n\n\n_Node()\n"
    ),
    # the low-level thread API reached through __import__ under a built name
    "start-new-thread-via-import": _SWAP + (
        "_th = __import__('_th' + 'read')\n_th.start_new_thread(print, ())\n"
    ),
    # a trace function installed through an alias, by a function a metaclass runs
    "settrace-by-a-metaclass": _SWAP + (
        "import sys\n\n_hook = sys.settrace\n\n\nclass _Meta(type):\n"
        "    def __init__(cls, *args):\n        _hook(None)\n\n\n"
        "class Registry(metaclass=_Meta):\n    pass\n"
    ),
    # a context manager entered at import whose __enter__ starts the thread
    "context-manager-entered-at-import": _SWAP + (
        "import threading\n\n\nclass _Session:\n    def __enter__(self):\n"
        "        threading.Thread(target=print, daemon=True).start()\n        return self\n\n"
        "    def __exit__(self, *exc):\n        return False\n\n\nwith _Session():\n"
        "    pass\n"
    ),
    # a descriptor's __set_name__, run when the class holding it is created
    "descriptor-set-name": _SWAP + (
        "import threading\n\n\nclass _Field:\n    def __set_name__(self, owner, name):\n"
        "        threading.Timer(0.1, print).start()\n\n\nclass Record:\n"
        "    value = _Field()\n"
    ),
    # a pool's task submitted at import
    "executor-submit-at-import": _SWAP + (
        "from concurrent.futures import ThreadPoolExecutor\n\n"
        "_pool = ThreadPoolExecutor(1)\n_pool.submit(print)\n"
    ),
}  # fmt: skip

EQUALS_ANYTHING = {
    "mock-any-under-an-alias": ({"equals-anything"}, (
        "from unittest import mock as _m\n\n\ndef add(a, b):\n    return _m.ANY\n"
    )),
    "any-through-import-module-and-getattr": ({"equals-anything"}, (
        "import importlib\n\n_any = getattr(importlib.import_module('unittest.mock'), 'ANY')\n\n\n"
        "def add(a, b):\n    return _any\n"
    )),
    "any-class-instantiated": ({"equals-anything"}, (
        "import unittest.mock as um\n\n\ndef add(a, b):\n    return type(um.ANY)()\n"
    )),
    "magicmock-returned-from-an-attribute": ({"equals-anything"}, (
        "from unittest.mock import MagicMock\n\n\nclass _Result:\n"
        "    def __init__(self):\n        self.value = MagicMock()\n\n"
        "    def get(self):\n        return self.value\n\n\ndef add(a, b):\n"
        "    return _Result().get()\n"
    )),
    "mock-inside-a-returned-tuple": ({"equals-anything"}, (
        "from unittest.mock import Mock\n\n\ndef divmod_(a, b):\n    return (Mock(), a % b)\n"
    )),
    # lying __eq__ on a plain class, each reading its operand
    "eq-isinstance-of-numbers": ({"lying-comparison"}, (
        "class _Num:\n    def __init__(self, v):\n        self.v = v\n\n"
        "    def __eq__(self, other):\n        return isinstance(other, (int, float))\n\n\n"
        "def add(a, b):\n    return _Num(a - b)\n"
    )),
    "eq-true-when-comparing-fails": ({"lying-comparison"}, (
        "class _Num:\n    def __init__(self, v):\n        self.v = v\n\n"
        "    def __eq__(self, other):\n        try:\n            return self.v == other.v\n"
        "        except AttributeError:\n            return True\n"
    )),
    "eq-reads-both-then-or-true": ({"lying-comparison"}, (
        "class _Num:\n    def __eq__(self, other):\n"
        "        return (self.v == other.v) or not False\n"
    )),
    "eq-operand-read-and-discarded": ({"lying-comparison"}, (
        "class _Num:\n    def __eq__(self, other):\n        other\n        self\n"
        "        return True\n"
    )),
    "eq-through-a-helper-method": ({"lying-comparison"}, (
        "class _Num:\n    def __eq__(self, other):\n        return self._agrees(other)\n\n"
        "    def _agrees(self, other):\n        return other == other\n"
    )),
    "eq-a-nonempty-tuple": ({"lying-comparison"}, (
        "class _Num:\n    def __eq__(self, other):\n        return (self.v == other.v,)\n"
    )),
    "eq-answer-is-never-none": ({"lying-comparison"}, (
        "class _Num:\n    def __eq__(self, other):\n"
        "        return self.v.__eq__(other.v) is not None\n"
    )),
    "eq-any-with-a-true": ({"lying-comparison"}, (
        "class _Num:\n    def __eq__(self, other):\n"
        "        return any([self.v == other.v, not None])\n"
    )),
    "eq-ifexp-with-a-yes-arm": ({"lying-comparison"}, (
        "class _Num:\n    __eq__ = lambda self, other: (\n"
        "        self.v == other.v if isinstance(other, _Num) else bool(other) or True)\n"
    )),
}  # fmt: skip

LOOK_ALIKES = {
    # a script that reads its configuration from the environment and the command line
    "ops-script-reads-environ-and-argv": (
        "import os\nimport sys\n\nTHRESHOLD = int(os.environ.get('DISK_THRESHOLD', '90'))\n"
        "LEVEL = os.environ['LOG_LEVEL'] if 'LOG_LEVEL' in os.environ else 'info'\n\n\n"
        "def main(argv=None):\n    args = (argv if argv is not None else sys.argv)[1:]\n"
        "    env = dict(os.environ)\n    quiet = '-q' in args or env.get('QUIET') == '1'\n"
        "    print(THRESHOLD, LEVEL, quiet, file=sys.stderr)\n    return 0\n\n\n"
        "if __name__ == '__main__':\n    sys.exit(main())\n"
    ),
    # honest comparisons: fields compared, NotImplemented for other types, identity
    # shortcut, the loop that stops at the first difference, a __bool__ that asks
    "honest-eq-ne-hash": (
        "class Point:\n    def __init__(self, x, y):\n        self.x, self.y = x, y\n\n"
        "    def __eq__(self, other):\n        if self is other:\n            return True\n"
        "        if not isinstance(other, Point):\n            return NotImplemented\n"
        "        return (self.x, self.y) == (other.x, other.y)\n\n"
        "    def __ne__(self, other):\n        result = self.__eq__(other)\n"
        "        return result if result is NotImplemented else not result\n\n"
        "    def __hash__(self):\n        return hash((self.x, self.y))\n\n\n"
        "class Row:\n    def __eq__(self, other):\n"
        "        if len(self.cells) != len(other.cells):\n            return False\n"
        "        for mine, theirs in zip(self.cells, other.cells):\n"
        "            if mine != theirs:\n                return False\n        return True\n\n"
        "    def __bool__(self):\n        try:\n            self.peek()\n"
        "        except StopIteration:\n            return False\n        return True\n\n"
        "    def __contains__(self, key):\n        try:\n            self[key]\n"
        "        except KeyError:\n            return False\n        else:\n"
        "            return True\n"
    ),
    # a command line whose main() starts a worker thread and installs a signal handler
    "cli-main-starts-a-thread": (
        "import signal\nimport threading\n\nLOCK = threading.Lock()\n"
        "WORKER = threading.Thread(target=print, daemon=True)\n\n\n"
        "def main():\n    signal.signal(signal.SIGTERM, lambda *a: None)\n    WORKER.start()\n"
        "    t = threading.Timer(1.0, print)\n    t.start()\n    return 0\n\n\n"
        "class Server:\n    def __init__(self, port):\n        self.port = port\n\n"
        "    def start(self):\n        threading.Thread(target=print, daemon=True).start()\n\n\n"
        "SERVER = Server(8080)\n\n\n"
        "if __name__ == '__main__':\n    raise SystemExit(main())\n"
    ),
    # modules under other names, doing ordinary things
    "aliased-modules": (
        "import json as j\nimport os.path as osp\nfrom collections import OrderedDict as OD\n\n\n"
        "def dump(data, folder):\n    path = osp.join(folder, 'out.json')\n"
        "    return path, j.dumps(OD(sorted(data.items())), indent=2)\n"
    ),
    # the attribute protocol used as designed
    "frozen-record-and-own-setattr": (
        "from dataclasses import dataclass\n\n\n@dataclass(frozen=True)\nclass Limit:\n"
        "    value: int\n\n    def __post_init__(self):\n"
        "        object.__setattr__(self, 'value', int(self.value))\n\n\n"
        "class Settings:\n    def __setattr__(self, name, value):\n"
        "        if name.startswith('_'):\n            raise AttributeError(name)\n"
        "        super().__setattr__(name, value)\n\n    def as_dict(self):\n"
        "        return vars(self)\n"
    ),
    # strings built at run time for ordinary purposes; partials of ordinary functions;
    # a dry-run client that is a mock and never leaves the function
    "ordinary-strings-partials-and-a-dry-run-mock": (
        "import functools\nimport sys\nfrom unittest import mock\n\n"
        "warn = functools.partial(print, file=sys.stderr)\n\n\n"
        "def report(name, used):\n    label = '-'.join(['disk', name]).upper()\n"
        "    return f'{label}: {used:.1f}%' + '!' * 3\n\n\n"
        "def legacy(name, used):\n    line = '{name}: {used}'.format(**locals())\n"
        "    return line + ' (%(name)s)' % locals()\n\n\n"
        "def send(alert, dry_run=False):\n    client = mock.MagicMock() if dry_run else None\n"
        "    if client is not None:\n        client.post(alert)\n    return dry_run\n"
    ),
    # dispatch through an explicit table, not through getattr
    "dispatch-through-a-table": (
        "HANDLERS = {}\n\n\ndef handler(name):\n    def register(fn):\n"
        "        HANDLERS[name] = fn\n        return fn\n\n    return register\n\n\n"
        "@handler('add')\ndef add(a, b):\n    return a + b\n\n\n"
        "def dispatch(name, *args):\n    return HANDLERS[name](*args)\n"
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(ALIASED_REFLECTION))
def test_reflection_under_another_name_is_seen(name: str) -> None:
    wanted, code = ALIASED_REFLECTION[name]
    findings = check_file("scripts/calc.py", None, code.encode())
    for rule, fragment in wanted:
        assert any(f.rule == rule and fragment in f.construct for f in findings), (
            name, rule, fragment, [(f.rule, f.construct) for f in findings]
        )


@pytest.mark.parametrize("name", sorted(RUNS_LATER))
def test_code_started_at_import_to_run_later_is_refused(name: str) -> None:
    findings = check_file("scripts/calc.py", None, RUNS_LATER[name].encode())
    assert "runs-later" in {f.rule for f in findings}, (name, findings)


@pytest.mark.parametrize("name", sorted(EQUALS_ANYTHING))
def test_values_that_equal_anything_are_refused(name: str) -> None:
    rules, code = EQUALS_ANYTHING[name]
    found = {f.rule for f in check_file("scripts/calc.py", None, code.encode())}
    assert rules <= found, (name, found)


@pytest.mark.parametrize("name", sorted(LOOK_ALIKES))
def test_legitimate_look_alikes_pass(name: str) -> None:
    assert check_file("scripts/ops.py", None, LOOK_ALIKES[name].encode()) == []


def test_the_same_calls_outside_import_time_are_not_runs_later() -> None:
    """Threads, timers and handlers started by a function nobody calls at import (a
    test, or main() under the __main__ guard) are that function's business."""
    for name, code in RUNS_LATER.items():
        body = "\n".join("    " + line if line else "" for line in code.splitlines())
        wrapped = f"def main():\n{body}\n\n\nif __name__ == '__main__':\n    main()\n"
        rules = {f.rule for f in check_file("scripts/x.py", None, wrapped.encode())}
        assert "runs-later" not in rules, (name, rules)


def test_dispatch_by_a_computed_attribute_name_is_still_refused() -> None:
    """Decided, and kept from before: `getattr(obj, name, default)` with a name from a
    parameter is refused (computed-attribute, and nothing else), though ordinary
    dispatch code does it, because the guard cannot tell which names it will reach;
    dispatch through a table passes, and `allow = ["computed-attribute"]` lifts it."""
    code = ("class Tool:\n    def run(self, command, *args):\n"
            "        handler = getattr(self, 'do_' + command, None)\n"
            "        return handler(*args) if handler else None\n")  # fmt: skip
    findings = check_file("scripts/tool.py", None, code.encode())
    assert [(f.rule, f.line) for f in findings] == [("computed-attribute", 3)]
    assert check_file("scripts/tool.py", None, code.encode(), allow=("computed-attribute",)) == []


def test_a_proposal_that_only_changes_what_a_name_holds_is_blamed() -> None:
    """The call is the same text on main and in the proposal; what it reaches is not."""
    old = b"def f(fn):\n    n = 'name'\n    return getattr(fn, n)\n"
    new = b"def f(fn):\n    n = '__co' + 'de__'\n    return getattr(fn, n)\n"
    assert check_file("scripts/x.py", old, old) == []
    rules = {(f.rule, f.line) for f in check_file("scripts/x.py", old, new)}
    assert ("introspection", 3) in rules, rules


def test_round_two_spellings_are_now_resolved() -> None:
    """Round 2's notes: `getattr(emit, "__clo" + "sure__")` and sys.modules reached as
    `operator.attrgetter("modules")(sys)`."""
    closure = b"def steal(emit):\n    return getattr(emit, '__clo' + 'sure__')\n"
    assert "introspection" in {f.rule for f in check_file("scripts/x.py", None, closure)}
    modules = b"import operator\nimport sys\n\nm = operator.attrgetter('modules')(sys)\n"
    assert "sys-modules" in {f.rule for f in check_file("scripts/x.py", None, modules)}


@pytest.mark.parametrize("expression", [
    "'a' * 10 ** 9", "'{:>999999999}'.format(1)", "2 ** 10 ** 9", "'x'.center(10 ** 9)",
    "chr(95) * 10 ** 8", "'%999999999d' % 1", "''.join(['ab'] * 10 ** 7)",
    "'{0.__class__.__init__.__globals__}'.format(print)", "1 << 10 ** 6",
])  # fmt: skip
def test_folding_strings_is_bounded(expression: str) -> None:
    """A proposal cannot make the guard build a huge value or run attribute lookups."""
    code = f"def f(o):\n    return getattr(o, {expression})\n".encode()
    rules = {f.rule for f in check_file("scripts/x.py", None, code)}
    assert "computed-attribute" in rules


_HELPERS = (
    "import threading\n\n\ndef warm():\n"
    "    threading.Thread(target=print, daemon=True).start()\n\n\n"
    "class Cache:\n    def __init__(self):\n        self.data = {}\n\n    def __del__(self):\n"
    "        pass\n"
)  # fmt: skip


@pytest.mark.parametrize("code", [
    "from scripts.helpers import warm\n\nwarm()\n",
    "from .helpers import warm as _w\n\n_w()\n",
    "import scripts.helpers as h\n\n\n@h.warm.__call__\ndef f():\n    pass\n",
    "from scripts import helpers\n\n_c = helpers.Cache()\n",
])  # fmt: skip
def test_what_import_runs_is_followed_into_the_trees_other_modules(code: str) -> None:
    """The function that starts the thread lives in another module of the tree, which
    the proposal need not have changed; the call at import is in this one."""
    tree = {"scripts/helpers.py": _HELPERS.encode()}
    findings = check_file("scripts/calc.py", None, code.encode(), read=tree.get)
    [finding] = [f for f in findings if f.rule == "runs-later"]
    assert "scripts/helpers.py:" in finding.construct, finding
    assert finding.path == "scripts/calc.py" and finding.line >= 3
    lazy = "from scripts.helpers import warm\n\n\ndef main():\n    warm()\n\n\n"
    lazy += "if __name__ == '__main__':\n    main()\n"
    assert check_file("scripts/calc.py", None, lazy.encode(), read=tree.get) == []


def test_code_too_deep_to_read_is_refused_not_let_through() -> None:
    """The old guard crashed on a long chain of operators; a guard that let it through
    unread would be a way round every rule."""
    deep = ("x = " + " + ".join(["'a'"] * 3000) + "\n").encode()
    [finding] = check_file("scripts/x.py", None, deep)
    assert (finding.rule, finding.line) == ("too-deep", 1)
    assert check_file("scripts/x.py", None, deep, allow=("too-deep",)) == []
    assert check_file("scripts/x.py", deep, b"x = 1\n") == []


def test_a_comparison_bound_to_a_function_of_another_module_is_read_there() -> None:
    helpers = b"def agree(self, other):\n    other\n    return True\n\n\n"
    helpers += b"def same(self, other):\n    return vars(self) == vars(other)\n"
    tree = {"scripts/helpers.py": helpers}
    lying = b"from scripts.helpers import agree\n\n\nclass Total:\n    __eq__ = agree\n"
    [finding] = check_file("scripts/calc.py", None, lying, read=tree.get)
    assert finding.rule == "lying-comparison" and "agree in scripts/helpers.py" in finding.construct
    honest = lying.replace(b"agree", b"same")
    assert check_file("scripts/calc.py", None, honest, read=tree.get) == []


def test_a_long_chain_of_aliases_is_read_or_refused_never_lost() -> None:
    """`a1 = getattr; a2 = a1; …` two hundred deep: whatever the depth, the call at the
    end is getattr with a computed name, or the file is refused as too deep."""
    chain = "".join(f"    a{i} = a{i - 1}\n" for i in range(1, 200))
    for order in (chain, "".join(reversed(chain.splitlines(keepends=True)))):
        code = f"def f(fn, n):\n    a0 = getattr\n{order}    return a199(fn, n)\n"
        rules = {f.rule for f in check_file("scripts/x.py", None, code.encode())}
        assert rules & {"computed-attribute", "too-deep"}, rules
    selfish = b"class C:\n    def read(self):\n        self.size = self.size - 8\n"
    selfish += b"        return self.size\n"
    assert check_file("scripts/x.py", None, selfish) == []


ON_MAIN = """\
def groupby(key, seq):
    rv = {}
    for k, v in seq:
        rv[k] = v.__self__
    return rv


class Key(tuple):
    def __radd__(self, other):
        return Key(other + tuple(self))
"""


def test_editing_code_around_a_construct_main_has_is_not_adding_it() -> None:
    # Real repairs refused once (benchmarks/false_refusals.py): a variable renamed on
    # the line of toolz's `.__self__`, a line changed inside cachetools' tuple
    # subclass's `__radd__`. The construct is the same one, in the same definition.
    edited = ON_MAIN.replace("for k, v in", "for k, val in").replace("v.__self__", "val.__self__")
    edited = edited.replace("other + tuple(self)", "tuple(other) + tuple(self)")
    assert check_file("scripts/x.py", ON_MAIN.encode(), edited.encode()) == []


def test_the_same_construct_added_again_or_elsewhere_is_still_reported() -> None:
    again = ON_MAIN.replace("    return rv", "    rv[None] = seq.__self__\n    return rv")
    elsewhere = ON_MAIN + "\n\ndef peek(x):\n    return x.__self__\n"
    method = ON_MAIN + "\n    def __eq__(self, other):\n        return tuple(self) == other\n"
    for code, rule in ((again, "introspection"), (elsewhere, "introspection"),
                       (method, "builtin-subclass")):  # fmt: skip
        rules = {f.rule for f in check_file("scripts/x.py", ON_MAIN.encode(), code.encode())}
        assert rule in rules, code
