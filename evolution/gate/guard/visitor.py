"""The rules, applied to what each expression refers to (`names.Resolver`), not to how it
is spelled: `b.getattr` after `import builtins as b` is getattr, `m` after `from sys
import modules as m` is sys.modules, `vars(sys)["modules"]` and `getattr(sys, "mod" +
"ules")` are too. What the primitives of reflection reach, and where they go, is
`reflection.py`'s part."""

from __future__ import annotations

import ast

from evolution.gate.guard.equality import anything_returned, comparison_lie
from evolution.gate.guard.modules import Modules
from evolution.gate.guard.names import Resolver
from evolution.gate.guard.reflection import KINDS, Reflection, dotted, short
from evolution.gate.guard.table import (
    COMPARISONS,
    DYNAMIC_MODULES,
    FRAME_ATTRS,
    HARMLESS_DUNDERS,
    INTERNAL_ATTRS,
    INTERNAL_WORDS,
    SELF_ONLY,
    TEST_PATHS,
    VALUE_TYPES,
    machinery,
    referent_rule,
)
from evolution.gate.guard.values import Local, Namespace, Ref, canonical, refs, strings

_IMPORTERS = {"builtins.__import__", "importlib.__import__", "importlib.import_module"}


class Visitor(Reflection, ast.NodeVisitor):
    def __init__(self, resolver: Resolver, modules: Modules | None = None) -> None:
        self.r = resolver
        self.modules = modules  # the tree's other modules, where a reader was given
        self.found: list[tuple[str, ast.AST, str]] = []
        self._rules: dict[int, set[str]] = {}  # rules already reported on a node
        self._hits: dict[int, dict[str, str]] = {}

    def add(self, rule: str, node: ast.AST, construct: str) -> None:
        self.found.append((rule, node, construct))
        self._rules.setdefault(id(node), set()).add(rule)

    # -- imports -----------------------------------------------------------------------------

    def _imported(self, node: ast.AST, module: str) -> None:
        top = module.split(".")[0]
        if machinery(module) or module == "unittest":
            self.add("test-machinery", node, f"import {module}")
        elif top == "gc":
            self.add("gc", node, f"import {module}")
        elif top == "atexit":
            self.add("atexit", node, f"import {module}")
        elif top in ("ctypes", "_ctypes", "cffi"):
            self.add("ctypes", node, f"import {module}")
        elif top in DYNAMIC_MODULES:
            self.add("dynamic-code", node, f"import {module}")
        elif (hit := referent_rule(module)) and hit[0] == "equals-anything":
            self.add(hit[0], node, f"import {module}")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._imported(node, alias.name)
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level == 0:
            if module != "unittest":  # `from unittest import mock` is fine; names checked below
                self._imported(node, module)
            for alias in node.names:
                full = f"{module}.{alias.name}"
                if machinery(full) and (module == "unittest" or not machinery(module)):
                    self._imported(node, full)
                hit = referent_rule(canonical(full))
                shown = f"from {module} import {alias.name}"
                if hit and hit[0] not in self._rules.get(id(node), set()):
                    self.add(hit[0], node, shown)
                elif module == "builtins" or alias.name == "__import__":
                    self.add("builtins" if module == "builtins" else "dynamic-code", node, shown)
        self.generic_visit(node)

    # -- what names refer to -----------------------------------------------------------------

    def _hits_of(self, node: ast.AST) -> dict[str, str]:
        if id(node) not in self._hits:
            hits: dict[str, str] = {}
            for name in refs(frozenset(v for v in self.r.values(node)
                                       if not (isinstance(v, Ref) and v.instance))):
                hit = referent_rule(name)
                if hit:
                    hits.setdefault(hit[0], hit[1])
            self._hits[id(node)] = hits
        return self._hits[id(node)]

    def _referent(self, node: ast.AST, child: ast.AST | None) -> None:
        """A finding for each forbidden object `node` refers to, unless the part it is
        built from (`child`) already referred to one under the same rule."""
        inherited = self._hits_of(child) if child is not None else {}
        if isinstance(node, ast.Name) and self.r.imported(node):
            return  # the import statement that binds the name carries the finding
        done = self._rules.get(id(node), set())
        for rule, shown in self._hits_of(node).items():
            if rule not in inherited and rule not in done:
                spelled = dotted(node)
                self.add(rule, node, shown if spelled in (shown, f"builtins.{shown}")
                         else f"{spelled or short(node)} ({shown})")  # fmt: skip

    def visit_Name(self, node: ast.Name) -> None:
        if node.id == "__builtins__":
            self.add("builtins", node, "__builtins__")
        if isinstance(node.ctx, ast.Load):
            self._referent(node, None)
            self._escape(node)
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in FRAME_ATTRS:
            self.add("frames", node, dotted(node) or f".{node.attr}")
        elif node.attr in INTERNAL_ATTRS:
            self.add("introspection", node, f".{node.attr}")
        elif node.attr == "__dict__" and self._module(self.r.values(node.value)):
            self.add("introspection", node, f"{dotted(node.value) or '…'}.__dict__")
        if isinstance(node.ctx, ast.Load):
            self._referent(node, node.value)
            self._escape(node)
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        containers = self.r.values(node.value)
        namespace = any(isinstance(v, Namespace) for v in containers)
        if (namespace or Ref("builtins") in containers) and not isinstance(
            node.slice, ast.Constant
        ):
            spelled = dotted(node.value) or "a namespace"
            self.add("computed-attribute", node, f"{spelled}[<computed>]")
        if isinstance(node.ctx, ast.Load):
            self._referent(node, node.value)
            self._escape(node)
        self._built_string(node)
        self.generic_visit(node)

    def _module(self, values: frozenset[object]) -> str:
        return next((v.name for v in values if isinstance(v, Ref) and "." not in v.name), "")

    # -- calls -------------------------------------------------------------------------------

    def visit_Call(self, node: ast.Call) -> None:
        for primitive, args, nodes in self.r.invocations(node):
            if primitive in KINDS:
                self._access(node, primitive, args, nodes)
            elif primitive in _IMPORTERS:
                shown = primitive.removeprefix("builtins.")
                if not nodes or not isinstance(nodes[0], ast.Constant):
                    self.add("dynamic-code", node, f"{shown}(<computed>)")
                for module in strings(args[0]) if args else []:
                    self._imported(node, module)
            elif primitive == "builtins.type" and len(node.args) == 3:
                self._type_call(node)
        for value in self.r.values(node):
            if isinstance(value, Namespace) and (module := self._module(frozenset({value.owner}))):
                self.add("introspection", node, f"vars({module})")
                break
        self._referent(node, node.func)
        self._escape(node)
        self._built_string(node)
        self.generic_visit(node)

    def _type_call(self, node: ast.Call) -> None:
        """`type("N", (int,), {...})` builds a class too."""
        bases = node.args[1]
        if isinstance(bases, ast.Tuple) and isinstance(node.args[2], ast.Dict):
            base = self._value_subclass(list(bases.elts))
            if base:
                keys = [(s, node) for k in node.args[2].keys if k is not None
                        for s in strings(self.r.values(k))]  # fmt: skip
                self._special_methods(keys, base)

    # -- strings -----------------------------------------------------------------------------

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and len(node.value) < 400:
            found = INTERNAL_WORDS.search(node.value)
            if found:
                self.add("introspection", node, f"the string {found.group(0)!r}")
            elif TEST_PATHS.search(node.value):
                self.add("reads-tests", node, f"the path {node.value!r}")

    def _built_string(self, node: ast.AST) -> None:
        """A string computed from literals is looked at like a literal one."""
        texts = [t for t in strings(self.r.values(node)) if len(t) < 400]
        if not texts:
            return
        literals = " ".join(n.value for n in ast.walk(node) if isinstance(n, ast.Constant)
                            and isinstance(n.value, str))  # fmt: skip
        for text in texts:
            found = INTERNAL_WORDS.search(text)
            if found and found.group(0) not in literals:
                self.add("introspection", node, f"a string built at run time: {found.group(0)!r}")
            elif not found and TEST_PATHS.search(text) and not TEST_PATHS.search(literals):
                self.add("reads-tests", node, f"the path {text!r}, built at run time")

    def visit_BinOp(self, node: ast.BinOp) -> None:
        self._built_string(node)
        self.generic_visit(node)

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        self._built_string(node)
        self.generic_visit(node)

    # -- assignments -------------------------------------------------------------------------

    def _target(self, target: ast.AST, node: ast.AST) -> None:
        if isinstance(target, ast.Attribute | ast.Subscript):
            if isinstance(target, ast.Attribute) and isinstance(node, ast.Assign):
                self._bound(target.attr, node.value, node)
            values = self.r.values(target.value)
            if isinstance(target, ast.Attribute):  # an attribute of a module (or its member)
                owners = {v for v in values if isinstance(v, Ref) and not v.instance}
            else:  # a key of a module's namespace, or of builtins
                owners = {v.owner for v in values if isinstance(v, Namespace)
                          and isinstance(v.owner, Ref)} | ({Ref("builtins")} & values)  # fmt: skip
            base = dotted(target.value) or "…"
            shown = f".{target.attr}" if isinstance(target, ast.Attribute) else "[…]"
            if Ref("builtins") in owners:
                self.add("builtins", node, f"{base}{shown} = …")
            elif any(not o.name.startswith("builtins.") for o in owners):
                self.add("module-patch", node, f"{base}{shown} = …")
        elif isinstance(target, ast.Tuple | ast.List):
            for element in target.elts:
                self._target(element, node)
        elif isinstance(target, ast.Starred):
            self._target(target.value, node)

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

    # -- comparisons that lie, values that equal anything ------------------------------------

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        reason = comparison_lie(node.name, node, self.r)
        if reason:
            self.add("lying-comparison", node, reason)
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def _returned(self, node: ast.AST, value: ast.expr | None) -> None:
        what = anything_returned(value, self.r) if value is not None else ""
        if what:
            self.add("equals-anything", node, what)

    def visit_Return(self, node: ast.Return) -> None:
        self._returned(node, node.value)
        self.generic_visit(node)

    def visit_Yield(self, node: ast.Yield) -> None:
        self._returned(node, node.value)
        self.generic_visit(node)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._returned(node, node.body)
        self.generic_visit(node)

    def _value_subclass(self, bases: list[ast.expr]) -> str:
        for base in bases:
            names = [dotted(base), *refs(self.r.values(base))]
            for name in names:
                if name.rsplit(".", 1)[-1] in VALUE_TYPES:
                    return name.rsplit(".", 1)[-1]
        return ""

    def _special_methods(self, names: list[tuple[str, ast.AST]], base: str) -> None:
        for name, where in names:
            if name.startswith("__") and name.endswith("__") and name not in HARMLESS_DUNDERS:
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
            for name in strings(self.r.values(key)) if key is not None else []:
                self._bound(name, value, node)
        self.generic_visit(node)

    def _bound(self, name: str, value: ast.AST, node: ast.AST) -> None:
        """A method named `name` bound to `value`: a lambda or a def of this file, or one
        imported from another module of the tree (read there)."""
        if name not in COMPARISONS and name not in SELF_ONLY:
            return
        for function in self.r.values(value):
            found: list[tuple[Resolver, str, object]] = [(self.r, "", function)]
            if isinstance(function, Ref) and self.modules is not None and not function.instance:
                found = self.modules.find(function.name, self.r)
            for resolver, path, target in found:
                if not isinstance(target, Local):
                    continue
                reason = comparison_lie(name, target.node, resolver)
                if reason:
                    where = f" ({target.node.name} in {path})" if path and hasattr(
                        target.node, "name") else ""  # fmt: skip
                    self.add("lying-comparison", node, reason + where)
                    return

