"""The static guard: code an automated proposal may not add to an evolvable file.

Before any test runs, the gate reads the Python that a proposal adds or changes and
rejects constructs that reach into the test machinery or the interpreter instead of
doing the script's job: the ways a model has been seen to win by fooling its tests
(METR's reward-hacking reports, the Darwin Gödel Machine, ImpossibleBench). The rules
are the table below; `[evolution] allow = ["rule", ...]` in SPEC.md lifts one on purpose.

A construct is reported only if the proposal added it: what the file already held on
main (the same rule on the same code) is not, so a proposal can touch a file that
legitimately uses, say, `atexit`, without being blamed for it.

This is one layer of several. It cannot see code built at run time from data, nor what
a subprocess runs; the sandbox, the authenticated report channel and the canaries are
there for what it misses.
"""

from __future__ import annotations

import ast
import contextlib
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

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
    "lying-comparison": "defines __eq__/__ne__ (or another comparison) that ignores its "
    "operand, or a __hash__ or __bool__ that ignores self (in a class, a type() call or "
    "a setattr)",
    "dynamic-code": "runs code built at run time or loaded from data (exec, eval, compile, "
    "a computed __import__ or import_module, runpy, pickle or marshal loads, "
    "pkgutil.resolve_name, copyreg)",
    "introspection": "reaches interpreter internals or the test machinery (__subclasses__, "
    "__globals__, __closure__, __code__, __builtins__, a module's __dict__), in code or "
    "named in a string (f_back, tb_frame, _pytest, pluginmanager, …)",
    "startup-hook": "adds a file the interpreter or pytest runs at start-up "
    "(sitecustomize.py, usercustomize.py, *.pth, conftest.py)",
    "import-system": "changes how modules are found or loaded (sys.meta_path, "
    "sys.path_hooks, sys.path_importer_cache, importlib's loaders)",
    "builtin-subclass": "subclasses a built-in value type (int, float, str, list, dict, "
    "…) with its own special methods: a value that can answer a test's comparison, "
    "rounding or conversion differently from what it is",
    "computed-attribute": "reads or writes an attribute whose name is computed at run time "
    "(getattr, setattr, delattr, hasattr, attrgetter, methodcaller)",
    "reads-tests": "names the test files (tests/, test_*.py, conftest.py): code under test "
    "has no business reading its own tests",
}

_MACHINERY = ("pytest", "_pytest", "pluggy", "py", "_ratchet_probe", "_ratchet_channel",
              "_ratchet_canon", "_ratchet_replay", "pytest_jsonreport", "pytest_timeout",
              "conftest", "xdist")  # fmt: skip
_UNITTEST_OK = ("unittest.mock",)
_FRAME_CALLS = {("sys", "_getframe"), ("sys", "_current_frames"),
                ("inspect", "currentframe"), ("inspect", "stack"), ("inspect", "trace"),
                ("inspect", "getouterframes"), ("inspect", "getinnerframes"),
                ("inspect", "getframeinfo"), ("traceback", "walk_stack"),
                ("traceback", "extract_stack"), ("traceback", "format_stack"),
                ("traceback", "print_stack"), ("traceback", "walk_tb")}  # fmt: skip
_FRAME_ATTRS = {"f_back", "f_locals", "f_globals", "f_code", "f_lineno", "tb_frame",
                "tb_next", "gi_frame", "cr_frame", "ag_frame", "f_builtins"}  # fmt: skip
_TRACE_CALLS = {("sys", "settrace"), ("sys", "setprofile"), ("threading", "settrace"),
                ("threading", "setprofile"), ("threading", "settrace_all_threads"),
                ("threading", "setprofile_all_threads"), ("sys", "addaudithook"),
                ("sys", "monitoring")}  # fmt: skip
_EXIT_CALLS = {("os", "_exit"), ("os", "abort"), ("posix", "_exit")}
_IMPORT_SYSTEM = {"sys.meta_path", "sys.path_hooks", "sys.path_importer_cache"}
_INTERNAL_ATTRS = {"__subclasses__", "__globals__", "__closure__", "__code__", "__builtins__",
                   "__base__", "__bases__", "__mro__", "__kwdefaults__", "__defaults__",
                   "__func__", "__self__", "__loader__", "__spec__"}  # fmt: skip
_COMPARISONS = {"__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__contains__"}
_SELF_ONLY = {"__hash__", "__bool__"}
_STARTUP_FILES = ("sitecustomize.py", "usercustomize.py", "conftest.py")
_VALUE_TYPES = {"int", "float", "complex", "str", "bytes", "bytearray", "bool", "list",
                "tuple", "dict", "set", "frozenset", "Decimal", "Fraction", "OrderedDict",
                "defaultdict", "Counter", "UserDict", "UserList", "UserString"}  # fmt: skip
_HARMLESS_DUNDERS = {"__init__", "__new__", "__repr__", "__slots__", "__doc__", "__module__",
                     "__qualname__", "__annotations__", "__match_args__"}  # fmt: skip
_DYNAMIC_MODULES = ("runpy", "marshal", "copyreg", "code", "codeop", "shelve")
_DYNAMIC_CALLS = {"pickle.load", "pickle.loads", "pickle.Unpickler", "_pickle.loads",
                  "pkgutil.resolve_name", "types.FunctionType", "types.CodeType",
                  "operator.attrgetter", "operator.methodcaller"}  # fmt: skip
_COMPUTED_NAME_CALLS = {"getattr", "setattr", "delattr", "hasattr"}
# Names that only code reaching into the interpreter or the test machinery would spell,
# even in a string (`attrgetter("tb_frame.f_back")`, `resolve_name("_pytest.runner")`).
_INTERNAL_WORDS = re.compile(
    r"\b(f_back|f_locals|f_globals|f_builtins|tb_frame|tb_next|gi_frame|cr_frame|ag_frame|"
    r"_getframe|_current_frames|__closure__|__code__|__globals__|__subclasses__|"
    r"__builtins__|_pytest|_ratchet_probe|pluginmanager|pytest_jsonreport|RATCHET_\w*)\b"
)
_TEST_PATHS = re.compile(r"^(tests?|conftest(\.py)?)$|(^|/)(tests?/|conftest\.py|test_\w*\.py)|"
                         r"^test_\*|/test_\*")


@dataclass(frozen=True)
class Finding:
    rule: str
    path: str
    line: int
    construct: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.construct} ({self.rule}: {RULES[self.rule]})"


def _dotted(node: ast.AST) -> str:
    """`a.b.c` for a Name/Attribute chain, "" for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _machinery(module: str) -> bool:
    top = module.split(".")[0]
    if top in _MACHINERY or top.startswith(("test_", "tests")) or top.endswith("_test"):
        return True
    return module.startswith("unittest") and not module.startswith(_UNITTEST_OK) and (
        module != "unittest"
    )


class _Visitor(ast.NodeVisitor):
    def __init__(self, functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef]) -> None:
        self.found: list[tuple[str, ast.AST, str]] = []
        self.modules: dict[str, str] = {}  # local name -> module it is bound to
        self.functions = functions  # every function of the file, by name

    def add(self, rule: str, node: ast.AST, construct: str) -> None:
        self.found.append((rule, node, construct))

    # -- imports -----------------------------------------------------------------------

    def _imported(self, node: ast.AST, module: str) -> None:
        top = module.split(".")[0]
        if _machinery(module) or module == "unittest":
            if module == "unittest":
                self.add("test-machinery", node, "import unittest")
            else:
                self.add("test-machinery", node, f"import {module}")
        elif top == "gc":
            self.add("gc", node, f"import {module}")
        elif top == "atexit":
            self.add("atexit", node, f"import {module}")
        elif top in ("ctypes", "_ctypes", "cffi"):
            self.add("ctypes", node, f"import {module}")
        elif top in _DYNAMIC_MODULES:
            self.add("dynamic-code", node, f"import {module}")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._imported(node, alias.name)
            self.modules[alias.asname or alias.name.split(".")[0]] = (
                alias.name if alias.asname else alias.name.split(".")[0]
            )
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level == 0:
            if module != "unittest":  # `from unittest import mock` is fine; names checked below
                self._imported(node, module)
            for alias in node.names:
                full = f"{module}.{alias.name}"
                if _machinery(full) and (module == "unittest" or not _machinery(module)):
                    self._imported(node, full)
                self.modules[alias.asname or alias.name] = full
                if (module, alias.name) in _FRAME_CALLS:
                    self.add("frames", node, f"from {module} import {alias.name}")
                elif (module, alias.name) in _TRACE_CALLS:
                    self.add("tracing", node, f"from {module} import {alias.name}")
                elif (module, alias.name) in _EXIT_CALLS:
                    self.add("hard-exit", node, f"from {module} import {alias.name}")
                elif module == "sys" and alias.name == "modules":
                    self.add("sys-modules", node, "from sys import modules")
                elif f"{module}.{alias.name}" in _IMPORT_SYSTEM or module.startswith(
                    "importlib.machinery"
                ):
                    self.add("import-system", node, f"from {module} import {alias.name}")
                elif module == "builtins" or alias.name == "__import__":
                    self.add("builtins" if module == "builtins" else "dynamic-code", node,
                             f"from {module} import {alias.name}")
        self.generic_visit(node)

    # -- names, attributes and calls ------------------------------------------------------

    def _resolve(self, dotted: str) -> str:
        head, _, rest = dotted.partition(".")
        module = self.modules.get(head)
        if module is None:
            return dotted
        return f"{module}.{rest}" if rest else module

    def visit_Attribute(self, node: ast.Attribute) -> None:
        full = self._resolve(_dotted(node))
        owner, _, name = full.rpartition(".")
        if full in ("sys.modules",) or full.startswith("sys.modules."):
            self.add("sys-modules", node, "sys.modules")
        elif full in _IMPORT_SYSTEM or full.startswith(("importlib.machinery.",
                                                        "importlib.util.spec_from")):
            self.add("import-system", node, full)
        elif (owner, name) in _FRAME_CALLS or node.attr in _FRAME_ATTRS:
            self.add("frames", node, full or f".{node.attr}")
        elif (owner, name) in _TRACE_CALLS:
            self.add("tracing", node, full)
        elif (owner, name) in _EXIT_CALLS:
            self.add("hard-exit", node, full)
        elif owner == "gc" or full == "gc":
            self.add("gc", node, full)
        elif owner == "atexit":
            self.add("atexit", node, full)
        elif node.attr in _INTERNAL_ATTRS:
            self.add("introspection", node, f".{node.attr}")
        elif node.attr == "__dict__" and self._is_module(node.value):
            self.add("introspection", node, f"{_dotted(node.value)}.__dict__")
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id == "__builtins__":
            self.add("builtins", node, "__builtins__")
        elif node.id in ("exec", "eval", "compile") and isinstance(node.ctx, ast.Load):
            self.add("dynamic-code", node, node.id)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = self._resolve(_dotted(node.func))
        if name == "setattr" and len(node.args) == 3 and isinstance(node.args[1], ast.Constant):
            self._bound(str(node.args[1].value), node.args[2], node)
        if name == "type" and len(node.args) == 3 and isinstance(node.args[1], ast.Tuple):
            base = self._value_subclass(list(node.args[1].elts))
            if base and isinstance(node.args[2], ast.Dict):
                self._special_methods([(str(k.value), node) for k in node.args[2].keys
                                       if isinstance(k, ast.Constant)], base)  # fmt: skip
        literal = bool(node.args) and isinstance(node.args[0], ast.Constant)
        if name in ("__import__", "importlib.import_module", "importlib.__import__",
                    "builtins.__import__"):
            if not literal:
                self.add("dynamic-code", node, f"{name}(<computed>)")
            else:
                self._imported(node, str(node.args[0].value))  # type: ignore[attr-defined]
        elif name in _DYNAMIC_CALLS:
            self.add("dynamic-code", node, name)
        elif name in _COMPUTED_NAME_CALLS and len(node.args) >= 2 and not isinstance(
            node.args[1], ast.Constant
        ):
            self.add("computed-attribute", node, f"{name}(…, <computed>)")
        elif name in ("setattr", "delattr") and node.args:
            target = node.args[0]
            if _dotted(target) == "__builtins__" or self._resolve(_dotted(target)) == "builtins":
                self.add("builtins", node, f"{name}(builtins, …)")
            elif self._is_module(target):
                self.add("module-patch", node, f"{name}({_dotted(target)}, …)")
        elif name in ("vars", "globals") and node.args and self._is_module(node.args[0]):
            self.add("introspection", node, f"{name}({_dotted(node.args[0])})")
        elif name == "getattr" and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant):
            attr = str(node.args[1].value)
            if attr in _INTERNAL_ATTRS or attr in _FRAME_ATTRS or attr in ("_getframe", "_exit"):
                self.add("introspection", node, f"getattr(…, {attr!r})")
        self.generic_visit(node)

    def _is_module(self, node: ast.AST) -> bool:
        """Whether `node` names an imported module, or something imported from one."""
        dotted = _dotted(node)
        return bool(dotted) and dotted.split(".")[0] in self.modules

    # -- assignments -----------------------------------------------------------------------

    def _target(self, target: ast.AST, node: ast.AST) -> None:
        if isinstance(target, ast.Attribute) and isinstance(node, ast.Assign):
            self._bound(target.attr, node.value, node)
        if isinstance(target, ast.Attribute):
            base = _dotted(target.value)
            if base in ("builtins", "__builtins__") or self._resolve(base) == "builtins":
                self.add("builtins", node, f"{base}.{target.attr} = …")
            elif base and base.split(".")[0] in self.modules:
                self.add("module-patch", node, f"{base}.{target.attr} = …")
        elif isinstance(target, ast.Subscript):
            base = self._resolve(_dotted(target.value))
            if base in ("builtins.__dict__", "__builtins__"):
                self.add("builtins", node, f"{base}[…] = …")
        elif isinstance(target, ast.Tuple | ast.List):
            for element in target.elts:
                self._target(element, node)

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._target(target, node)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._target(node.target, node)
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self._target(target, node)
        self.generic_visit(node)

    # -- comparisons that lie ----------------------------------------------------------------

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._comparison(node.name, node.args, node.body, node)
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and len(node.value) < 400:
            found = _INTERNAL_WORDS.search(node.value)
            if found:
                self.add("introspection", node, f"the string {found.group(0)!r}")
            elif _TEST_PATHS.search(node.value):
                self.add("reads-tests", node, f"the path {node.value!r}")

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        """An f-string's literal parts are looked at like any string; so are its fields."""
        self.generic_visit(node)

    def _value_subclass(self, bases: list[ast.expr]) -> str:
        for base in bases:
            name = _dotted(base).rsplit(".", 1)[-1]
            if name in _VALUE_TYPES:
                return name
        return ""

    def _special_methods(self, names: list[tuple[str, ast.AST]], base: str) -> None:
        for name, where in names:
            if name.startswith("__") and name.endswith("__") and name not in _HARMLESS_DUNDERS:
                self.add("builtin-subclass", where, f"{base} subclass defines {name}")

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        base = self._value_subclass(node.bases)
        if base:
            members = []
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    members.append((item.name, item))
                elif isinstance(item, ast.Assign):
                    members += [(t.id, item) for t in item.targets if isinstance(t, ast.Name)]
            self._special_methods(members, base)
        for item in node.body:
            if isinstance(item, ast.Assign):
                for target in item.targets:
                    if isinstance(target, ast.Name):
                        self._bound(target.id, item.value, item)
        self.generic_visit(node)

    def visit_Dict(self, node: ast.Dict) -> None:
        """`type("N", (int,), {"__eq__": lambda s, o: True})` builds a class too."""
        for key, value in zip(node.keys, node.values, strict=True):
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                self._bound(key.value, value, node)
        self.generic_visit(node)

    def _bound(self, name: str, value: ast.AST, node: ast.AST) -> None:
        """A method named `name` bound to `value` (a lambda, or a function of this file)."""
        if name not in _COMPARISONS and name not in _SELF_ONLY:
            return
        if isinstance(value, ast.Lambda):
            self._comparison(name, value.args, [value.body], node)
        elif isinstance(value, ast.Name) and value.id in self.functions:
            function = self.functions[value.id]
            self._comparison(name, function.args, function.body, node)

    def _comparison(
        self, name: str, args: ast.arguments, body: list[ast.AST], node: ast.AST
    ) -> None:
        params = [a.arg for a in [*args.posonlyargs, *args.args]]
        used = {n.id for stmt in body for n in ast.walk(stmt) if isinstance(n, ast.Name)}
        if name in _COMPARISONS and (len(params) < 2 or params[1] not in used) and not (
            args.vararg and args.vararg.arg in used
        ):
            self.add("lying-comparison", node, f"{name} ignores its operand")
        elif name in _SELF_ONLY and (not params or params[0] not in used) and not (
            args.vararg and args.vararg.arg in used
        ):
            self.add("lying-comparison", node, f"{name} ignores self")


def _findings(source: str) -> list[tuple[str, int, str, str]]:
    """(rule, line, construct, fingerprint) for each construct in `source`."""
    tree = ast.parse(source)
    functions = {
        node.name: node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    visitor = _Visitor(functions)
    visitor.visit(tree)
    found = []
    for rule, node, construct in visitor.found:
        fingerprint = ast.dump(node, annotate_fields=False, include_attributes=False)
        found.append((rule, getattr(node, "lineno", 0), construct, fingerprint))
    return found


def is_python(path: str, data: bytes) -> bool:
    return path.endswith((".py", ".pyw")) or (data.startswith(b"#!") and b"python" in (
        data.split(b"\n", 1)[0]
    ))


def check_file(
    path: str, old: bytes | None, new: bytes, allow: tuple[str, ...] = ()
) -> list[Finding]:
    """What `new` adds over `old` (None for a new file) that the rules forbid."""
    findings: list[Finding] = []
    name = path.rsplit("/", 1)[-1]
    if "startup-hook" not in allow and (name in _STARTUP_FILES or name.endswith(".pth")):
        findings.append(Finding("startup-hook", path, 1, f"adds {name}"))
    if not is_python(path, new):
        return findings
    try:
        added = _findings(new.decode("utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return findings  # the suite will say what is wrong with it
    before: Counter[tuple[str, str]] = Counter()
    if old is not None and is_python(path, old):
        with contextlib.suppress(SyntaxError, UnicodeDecodeError, ValueError):
            before.update((rule, fp) for rule, _line, _c, fp in _findings(old.decode("utf-8")))
    seen: set[tuple[str, int, str]] = set()
    for rule, line, construct, fingerprint in added:
        if before[(rule, fingerprint)] > 0:
            before[(rule, fingerprint)] -= 1
            continue
        if rule in allow or (rule, line, construct) in seen:
            continue
        seen.add((rule, line, construct))
        findings.append(Finding(rule, path, line, construct))
    return sorted(findings, key=lambda f: (f.path, f.line, f.rule))


def unknown_rules(allow: tuple[str, ...]) -> list[str]:
    return [rule for rule in allow if rule not in RULES]


def iter_rules() -> Iterator[tuple[str, str]]:
    yield from RULES.items()
