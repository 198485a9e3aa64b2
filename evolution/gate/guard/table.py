"""The guard's rule table, and what each rule knows: the objects it forbids by their
canonical names (what a name refers to once imports, aliases and built strings are
resolved), and the few attribute names that are internal on any object."""

from __future__ import annotations

import functools
import re

RULES: dict[str, str] = {
    "test-machinery": "imports pytest, _pytest, pluggy, unittest's internals, the gate's "
    "probe, or a test module, from code that is not a test",
    "sys-modules": "reads or writes sys.modules",
    "builtins": "assigns into builtins",
    "module-patch": "assigns to, or deletes, an attribute of an imported module (or of "
    "something imported from one)",
    "gc": "walks the garbage collector's objects",
    "frames": "reads stack frames or their locals (sys._getframe, inspect.currentframe, "
    "f_back, f_locals, tb_frame, ...)",
    "tracing": "installs a trace, profile or audit hook",
    "atexit": "registers code to run at interpreter exit",
    "hard-exit": "ends the process without unwinding (os._exit, os.abort)",
    "ctypes": "loads native code through ctypes or cffi",
    "lying-comparison": "defines a comparison (__eq__, __ne__, __lt__, …) that can answer "
    "yes on a path that does not compare self with its operand (it ignores one of them, "
    "or answers something true whatever they hold), or a __hash__ or __bool__ that "
    "ignores self (in a class, a type() call or a setattr)",
    "dynamic-code": "runs code built at run time or loaded from data (exec, eval, compile, "
    "a computed __import__ or import_module, runpy, pickle or marshal loads, "
    "pkgutil.resolve_name, copyreg)",
    "introspection": "reaches interpreter internals or the test machinery (__subclasses__, "
    "__globals__, __closure__, __code__, __builtins__, a module's __dict__ or vars()), in "
    "code or named in a string, literal or built at run time (f_back, tb_frame, _pytest, "
    "pluginmanager, …)",
    "startup-hook": "adds a file the interpreter or pytest runs at start-up "
    "(sitecustomize.py, usercustomize.py, *.pth, conftest.py)",
    "import-system": "changes how modules are found or loaded (sys.meta_path, "
    "sys.path_hooks, sys.path_importer_cache, importlib's loaders)",
    "builtin-subclass": "subclasses a built-in value type (int, float, str, list, dict, "
    "…) with its own special methods: a value that can answer a test's comparison, "
    "rounding or conversion differently from what it is",
    "computed-attribute": "reads or writes an attribute whose name is computed at run time "
    "(getattr, setattr, delattr, hasattr, attrgetter, methodcaller, "
    "object.__getattribute__/__setattr__, a vars()/globals()/__dict__ subscript), or "
    "hands one of these on where the guard cannot follow it",
    "reads-tests": "names the test files (tests/, test_*.py, conftest.py): code under test "
    "has no business reading its own tests",
    "runs-later": "arranges, while the module is imported, for code to run later on its "
    "own: a thread, a timer, a signal handler, a finalizer, a trace function, an instance "
    "of a class with __del__ (at module level, or in a function called from there)",
    "equals-anything": "refers to a value that equals anything (unittest.mock.ANY, "
    "dirty-equals, hamcrest matchers) or returns a mock object (Mock, MagicMock, …)",
    "too-deep": "nests expressions or statements deeper than the guard reads (a chain of "
    "a thousand operators): what it cannot read, it refuses",
}

MACHINERY = ("pytest", "_pytest", "pluggy", "py", "_ratchet_probe", "_ratchet_channel",
             "_ratchet_canon", "_ratchet_replay", "pytest_jsonreport",
             "pytest_timeout", "conftest", "xdist")  # fmt: skip
UNITTEST_OK = ("unittest.mock",)
FRAME_CALLS = {"sys._getframe", "sys._current_frames", "inspect.currentframe", "inspect.stack",
               "inspect.trace", "inspect.getouterframes", "inspect.getinnerframes",
               "inspect.getframeinfo", "traceback.walk_stack", "traceback.extract_stack",
               "traceback.format_stack", "traceback.print_stack",
               "traceback.walk_tb"}  # fmt: skip
FRAME_ATTRS = {"f_back", "f_locals", "f_globals", "f_code", "f_lineno", "tb_frame",
               "tb_next", "gi_frame", "cr_frame", "ag_frame", "f_builtins"}  # fmt: skip
TRACE_CALLS = {"sys.settrace", "sys.setprofile", "threading.settrace", "threading.setprofile",
               "threading.settrace_all_threads", "threading.setprofile_all_threads",
               "sys.addaudithook", "sys.monitoring"}  # fmt: skip
EXIT_CALLS = {"os._exit", "os.abort"}
IMPORT_SYSTEM = {"sys.meta_path", "sys.path_hooks", "sys.path_importer_cache"}
INTERNAL_ATTRS = {"__subclasses__", "__globals__", "__closure__", "__code__", "__builtins__",
                  "__base__", "__bases__", "__mro__", "__kwdefaults__", "__defaults__",
                  "__func__", "__self__", "__loader__", "__spec__"}  # fmt: skip
COMPARISONS = {"__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__contains__"}
SELF_ONLY = {"__hash__", "__bool__"}
STARTUP_FILES = ("sitecustomize.py", "usercustomize.py", "conftest.py")
VALUE_TYPES = {"int", "float", "complex", "str", "bytes", "bytearray", "bool", "list",
               "tuple", "dict", "set", "frozenset", "Decimal", "Fraction", "OrderedDict",
               "defaultdict", "Counter", "UserDict", "UserList", "UserString"}  # fmt: skip
HARMLESS_DUNDERS = {"__init__", "__new__", "__repr__", "__slots__", "__doc__", "__module__",
                    "__qualname__", "__annotations__", "__match_args__"}  # fmt: skip
DYNAMIC_MODULES = ("runpy", "marshal", "copyreg", "code", "codeop", "shelve")
DYNAMIC_CALLS = {"pickle.load", "pickle.loads", "pickle.Unpickler", "pkgutil.resolve_name",
                 "types.FunctionType", "types.CodeType", "operator.attrgetter",
                 "operator.methodcaller", "builtins.exec", "builtins.eval",
                 "builtins.compile"}  # fmt: skip
# What equals anything: the standard library's ANY (and its class), and the matcher
# libraries whose every value is built to compare equal to a family of values.
EQUALS_ANYTHING = ("unittest.mock.ANY", "unittest.mock._ANY", "dirty_equals", "hamcrest",
                   "callee")  # fmt: skip
MOCK_CLASSES = {"unittest.mock.Mock", "unittest.mock.MagicMock", "unittest.mock.NonCallableMock",
                "unittest.mock.NonCallableMagicMock", "unittest.mock.AsyncMock",
                "unittest.mock.PropertyMock"}  # fmt: skip
# The primitives of reflection: a name, or a namespace key, chosen by the caller.
REFLECTION = {"builtins.getattr", "builtins.setattr", "builtins.delattr", "builtins.hasattr",
              "builtins.vars", "builtins.globals", "builtins.locals", "builtins.__import__",
              "importlib.import_module", "importlib.__import__", "builtins.eval",
              "builtins.exec", "builtins.compile", "builtins.object.__getattribute__",
              "builtins.object.__setattr__", "builtins.object.__delattr__",
              "builtins.type.__getattribute__", "builtins.type.__setattr__",
              "builtins.type.__delattr__"}  # fmt: skip
# Code that runs later on its own once these are called.
LATER_CALLS = {"threading.Thread.start", "threading.Timer.start", "multiprocessing.Process.start",
               "_thread.start_new_thread", "_thread.start_joinable_thread", "signal.signal",
               "signal.setitimer", "signal.alarm", "weakref.finalize", "os.register_at_fork",
               "os.fork", "os.forkpty", "sys.settrace", "sys.setprofile", "threading.settrace",
               "threading.setprofile", "threading.settrace_all_threads",
               "threading.setprofile_all_threads",
               "sys.monitoring.register_callback"}  # fmt: skip
POOLS = ("concurrent.futures.ThreadPoolExecutor", "concurrent.futures.ProcessPoolExecutor",
         "multiprocessing.Pool", "multiprocessing.pool.Pool", "multiprocessing.pool.ThreadPool",
         "multiprocessing.dummy.Pool", "sched.scheduler")  # fmt: skip
POOL_METHODS = {"submit", "map", "apply_async", "map_async", "imap", "imap_unordered",
                "starmap", "starmap_async", "enter", "enterabs"}  # fmt: skip
WEAK_CALLBACKS = {"weakref.ref", "weakref.proxy", "weakref.WeakMethod"}
# Names only code reaching into the interpreter or the test machinery would spell, even
# in a string (`attrgetter("tb_frame.f_back")`, `resolve_name("_pytest.runner")`).
INTERNAL_WORDS = re.compile(
    r"\b(f_back|f_locals|f_globals|f_builtins|tb_frame|tb_next|gi_frame|cr_frame|ag_frame|"
    r"_getframe|_current_frames|__closure__|__code__|__globals__|__subclasses__|"
    r"__builtins__|_pytest|_ratchet_\w+|pluginmanager|pytest_jsonreport|RATCHET_\w*)\b"
)
TEST_PATHS = re.compile(r"^(tests?|conftest(\.py)?)$|(^|/)(tests?/|conftest\.py|test_\w*\.py)|"
                        r"^test_\*|/test_\*")  # fmt: skip


def machinery(module: str) -> bool:
    top = module.split(".")[0]
    if top in MACHINERY or top.startswith(("test_", "tests")) or top.endswith("_test"):
        return True
    return module.startswith("unittest") and not module.startswith(UNITTEST_OK) and (
        module != "unittest"
    )


def _under(name: str, prefixes: tuple[str, ...] | set[str]) -> str:
    return next((p for p in prefixes if name == p or name.startswith(p + ".")), "")


@functools.lru_cache(maxsize=4096)
def referent_rule(name: str) -> tuple[str, str] | None:
    """(rule, what to show) for a canonical name the rules forbid, whatever spelled it."""
    owner = name.rpartition(".")[0]
    if _under(name, {"sys.modules"}):
        return "sys-modules", "sys.modules"
    if _under(name, IMPORT_SYSTEM) or name.startswith(("importlib.machinery",
                                                       "importlib.util.spec_from")):
        return "import-system", name
    if name in FRAME_CALLS:
        return "frames", name
    if found := _under(name, TRACE_CALLS):
        return "tracing", found
    if name in EXIT_CALLS:
        return "hard-exit", name
    if _under(name, {"gc"}):
        return "gc", name
    if owner == "atexit" or _under(owner, {"atexit"}):
        return "atexit", name
    if found := _under(name, {"ctypes", "_ctypes", "cffi"}):
        return "ctypes", name
    if name in DYNAMIC_CALLS or _under(name, set(DYNAMIC_MODULES)):
        return "dynamic-code", name.removeprefix("builtins.")
    if found := _under(name, set(EQUALS_ANYTHING)):
        return "equals-anything", found
    if machinery(name):
        return "test-machinery", name
    return None
