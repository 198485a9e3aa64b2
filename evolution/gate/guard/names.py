"""What names refer to: a small abstract evaluation over a module's symbol table.

`Resolver.values(node)` is the set of things an expression may evaluate to (see
`values.py`): `b.getattr` after `import builtins as b`, `g` after `g = getattr`,
`vars(builtins)["getattr"]`, `globals()["__builtins__"]`, `sys.__dict__["modules"]`,
`getattr(sys, "mod" + "ules")`, `operator.attrgetter("modules")(sys)` and
`importlib.import_module("s" + "ys").modules` all name the same objects as their plain
spellings; a string built from literals (concatenation, join, f-strings, % and format,
chr, slices, reversed, base64, codecs) is folded to what it spells. The rules (the
visitor) consult it instead of reading spellings.

`Resolver.invocations(call)` (from `calls.py`) says which primitive of reflection a
call reaches and with what arguments, through bound methods, functools.partial,
attrgetter and methodcaller.

Slightly over 400 lines: the symbol table, the assignments it follows and the folding
of built strings are one evaluation over the same scopes."""

from __future__ import annotations

import ast
import builtins
from collections.abc import Callable

from evolution.gate.guard import fold
from evolution.gate.guard.calls import Calls, class_name
from evolution.gate.guard.scopes import Binding, Scope, Table
from evolution.gate.guard.values import (
    CAP,
    NOTHING,
    UNKNOWN,
    Bound,
    Const,
    ConstMethod,
    Inst,
    Local,
    Namespace,
    Ref,
    Super,
    Values,
    canonical,
    cap,
    exact,
    product,
)

_BUILTIN_NAMES = set(dir(builtins))
_MUTABLE = (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp)
DEPTH = 120  # deepest evaluation; beyond it the module is refused, not read as unknown


class Resolver(Calls):
    def __init__(self, tree: ast.Module) -> None:
        self.table = Table(tree)
        self._memo: dict[int, Values] = {}
        self._bound: dict[tuple[int, str], Values] = {}
        self._partial: dict[tuple[int, str], set[object]] = {}
        self._returns: dict[ast.AST, Values] = {}
        self._depth = 0
        self.exhausted = False  # an evaluation went deeper than DEPTH

    def scope(self, node: ast.AST) -> Scope:
        return self.table.scope_of.get(id(node), self.table.module)

    def parent(self, node: ast.AST) -> ast.AST | None:
        return self.table.parent_of.get(id(node))

    def values(self, node: ast.AST) -> Values:
        spine = [node]  # a long chain (a + b + …, a.b.c…, f()()…) is evaluated from its
        while len(spine) < 10_000:  # innermost end, so that depth is not its length
            inner = _spine(spine[-1])
            if inner is None:
                break
            spine.append(inner)
        for part in reversed(spine[1:]):
            self.evaluate(part, self.scope(part))
        return self.evaluate(node, self.scope(node))

    # -- evaluation -------------------------------------------------------------------------

    def evaluate(self, node: ast.AST, scope: Scope, env: dict[str, Values] | None = None) -> Values:
        key = id(node)
        if env is None and key in self._memo:
            return self._memo[key]
        if self._depth > DEPTH:
            self.exhausted = True
            return NOTHING
        # Recursion ends at names (a binding that reads itself sees what its other
        # bindings hold, and "unknown"), at defs' returns and at a depth limit (an
        # alias of an alias of … getattr, a hundred deep, must not read as unknown).
        self._depth += 1
        try:
            result = cap(self._evaluate(node, scope, env))
        except (fold.Unfoldable, ValueError, TypeError):
            result = NOTHING
        except RecursionError:
            self.exhausted = True
            result = NOTHING
        finally:
            self._depth -= 1
        if env is None:
            self._memo[key] = result
        return result

    def _evaluate(self, node: ast.AST, scope: Scope, env: dict[str, Values] | None) -> set[object]:
        ev = lambda n: self.evaluate(n, scope, env)  # noqa: E731
        if isinstance(node, ast.Constant):
            return {Const(fold.check(node.value))}
        if isinstance(node, ast.Name):
            return set(self.lookup(node.id, scope, env, getattr(node, "lineno", 0)))
        if isinstance(node, ast.Attribute):
            return {r for v in ev(node.value) for r in self.attribute(v, node.attr)}
        if isinstance(node, ast.Subscript):
            return set(self.subscript(ev(node.value), ev(node.slice)))
        if isinstance(node, ast.Slice):
            parts = [ev(p) if p is not None else frozenset({Const(None)})
                     for p in (node.lower, node.upper, node.step)]  # fmt: skip
            return self._lift(parts, lambda *c: fold.SliceValue(c))
        if isinstance(node, ast.Call):
            return self._call_node(node, scope, env)
        if isinstance(node, ast.BinOp):
            op = type(node.op).__name__
            return self._lift([ev(node.left), ev(node.right)], lambda a, b: fold.binop(op, a, b))
        if isinstance(node, ast.UnaryOp):
            op = type(node.op).__name__
            return self._lift([ev(node.operand)], lambda a: fold.unary(op, a))
        if isinstance(node, ast.BoolOp):
            return {v for part in node.values for v in ev(part)}
        if isinstance(node, ast.IfExp):
            return set(ev(node.body) | ev(node.orelse))
        if isinstance(node, ast.NamedExpr):
            return set(ev(node.value))
        if isinstance(node, ast.JoinedStr):
            return self._fstring(node, ev)
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            return self._sequence(node.elts, ev)
        if isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):
                return {UNKNOWN}
            parts = [ev(k) for k in node.keys if k is not None] + [ev(v) for v in node.values]
            half = len(node.keys)
            return self._lift(parts, lambda *c: dict(zip(c[:half], c[half:], strict=True)))
        if isinstance(node, ast.ListComp | ast.GeneratorExp | ast.SetComp):
            return self._comprehension(node, env)
        if isinstance(node, ast.Lambda):
            return {Local(node)}
        return {UNKNOWN}

    def _lift(self, parts: list[Values], function: Callable[..., object]) -> set[object]:
        """`function` applied to every combination of the parts' constants; unknown too
        if a part may hold something else, or a combination does not fold."""
        found: set[object] = set()
        for combo in product(parts):
            try:
                found.add(Const(fold.check(function(*combo))))
            except fold.Unfoldable:
                found.add(UNKNOWN)
        if any(not isinstance(v, Const) for part in parts for v in part):
            found.add(UNKNOWN)
        return found

    def _sequence(self, elements: list[ast.expr], ev: Callable[[ast.AST], Values]) -> set[object]:
        parts = [ev(e.value if isinstance(e, ast.Starred) else e) for e in elements]
        spread = [isinstance(e, ast.Starred) for e in elements]

        def build(*combo: object) -> tuple[object, ...]:
            items: list[object] = []
            for value, star in zip(combo, spread, strict=True):
                if star and not isinstance(value, str | bytes | tuple):
                    raise fold.Unfoldable
                items.extend(value if star else [value])  # type: ignore[call-overload]
            return tuple(items)

        return self._lift(parts, build)

    def _fstring(self, node: ast.JoinedStr, ev: Callable[[ast.AST], Values]) -> set[object]:
        parts: list[Values] = []
        for part in node.values:
            if isinstance(part, ast.FormattedValue):
                spec = frozenset({Const("")}) if part.format_spec is None else ev(part.format_spec)
                conversion = part.conversion
                parts.append(frozenset(self._lift(
                    [ev(part.value), spec],
                    lambda v, s, c=conversion: fold.formatted(v, c, s)),  # type: ignore[misc]
                ))  # fmt: skip
            else:
                parts.append(ev(part))
        return self._lift(parts, lambda *c: "".join(map(str, c)))

    def _comprehension(self, node: ast.ListComp | ast.GeneratorExp | ast.SetComp,
                       env: dict[str, Values] | None) -> set[object]:  # fmt: skip
        if len(node.generators) != 1 or node.generators[0].is_async:
            return {UNKNOWN}
        generator = node.generators[0]
        inner = self.scope(node.elt)
        items = exact(self.evaluate(generator.iter, inner, env))
        if not isinstance(items, str | bytes | tuple) or len(items) > 256:
            return {UNKNOWN}
        names = [n.id for n in ast.walk(generator.target) if isinstance(n, ast.Name)]
        result: list[object] = []
        for item in items:
            if isinstance(generator.target, ast.Name):
                bound = {generator.target.id: frozenset({Const(item)})}
            elif isinstance(item, tuple) and len(item) == len(names):
                bound = {n: frozenset({Const(i)}) for n, i in zip(names, item, strict=True)}
            else:
                return {UNKNOWN}
            local = {**(env or {}), **bound}
            if all(exact(self.evaluate(test, inner, local)) for test in generator.ifs):
                result.append(exact(self.evaluate(node.elt, inner, local)))
        return {Const(fold.check(tuple(result)))}

    # -- names ------------------------------------------------------------------------------

    def lookup(self, name: str, scope: Scope, env: dict[str, Values] | None = None,
               line: int = 0) -> Values:  # fmt: skip
        if env and name in env:
            return env[name]
        current: Scope | None = scope
        if scope.declared.get(name) == "global":
            current = self.table.module
        first = True
        while current is not None:
            if current.kind == "class" and not first:
                current = current.parent
                continue
            first = False
            if name in current.bindings:
                found = self.binding_values(current, name)
                if current.kind == "module":
                    found |= self._fallback(name, scope, line, bound=True)
                return found
            current = current.parent
        return self._fallback(name, scope, line, bound=False)

    def imported(self, node: ast.Name) -> bool:
        """Whether every binding `node` may read is an import statement's."""
        scope: Scope | None = self.scope(node)
        if scope is not None and scope.declared.get(node.id) == "global":
            scope = self.table.module
        first = True
        while scope is not None:
            if scope.kind == "class" and not first:
                scope = scope.parent
                continue
            first = False
            if node.id in scope.bindings:
                return all(b[0] == "vals" and all(isinstance(v, Ref) for v in b[1])
                           for b in scope.bindings[node.id])  # fmt: skip
            scope = scope.parent
        return False

    def _fallback(self, name: str, scope: Scope, line: int, bound: bool) -> Values:
        """A module-level name's other meaning: a star import's, or the builtin's
        (read before the module binds it, or where the binding is conditional)."""
        module = self.table.module
        if bound:
            first = module.unconditional.get(name)
            later = scope
            while later is not None and later.kind not in ("function",):
                later = later.parent
            if first is not None and (later is not None or (line and first < line)):
                return frozenset()
        found: set[object] = {Ref(canonical(f"{m}.{name}")) for m in module.stars}
        if name == "__builtins__":
            found.add(Ref("builtins"))
        elif name in _BUILTIN_NAMES:
            found.add(Ref(f"builtins.{name}"))
        if not found and not bound:
            found.add(UNKNOWN)
        return frozenset(found)

    def binding_values(self, scope: Scope, name: str) -> Values:
        return self._all((id(scope), name), scope.bindings[name], name in scope.mutated)

    def _all(self, key: tuple[int, str], bindings: list[Binding], mutated: bool) -> Values:
        """What any of `bindings` (of one name, or of one instance attribute) may hold."""
        if key in self._bound:
            return self._bound[key]
        if key in self._partial:  # a binding that reads itself (`s += "x"`, `self.n -= 8`)
            return frozenset(self._partial[key] | {UNKNOWN})
        self._partial[key] = set()
        for binding in bindings:
            self._partial[key] |= self._binding(binding, mutated)
        found = cap(self._partial.pop(key))
        self._bound[key] = found
        return found

    def _binding(self, binding: Binding, mutated: bool) -> Values:
        kind = binding[0]
        if kind == "vals":
            return binding[1]
        if kind == "expr":
            found = self.evaluate(binding[1], binding[2])
            mutable = isinstance(binding[1], _MUTABLE)
            return found | NOTHING if mutated and mutable else found
        if kind in ("item", "iter"):
            found = set()
            for value in self.evaluate(binding[1], binding[2]):
                items = value.value if isinstance(value, Const) else None
                if kind == "item" and isinstance(items, tuple) and len(items) > binding[3]:
                    found.add(Const(items[binding[3]]))
                elif kind == "iter" and isinstance(items, str | bytes | tuple):
                    found |= {Const(i) for i in items[: CAP + 1]}
                else:
                    found.add(UNKNOWN)
            return cap(found)
        return NOTHING

    # -- attributes, items, calls -----------------------------------------------------------

    def attribute(self, value: object, attr: str) -> Values:
        if attr == "__call__":
            return frozenset({value})
        if isinstance(value, Const):
            if isinstance(value.value, str | bytes):
                return frozenset({ConstMethod(value.value, attr)})
            return NOTHING
        if attr in ("__getattribute__", "__setattr__", "__delattr__"):
            if value in (Ref("builtins.object"), Ref("builtins.type")):
                return frozenset({Ref(f"{value.name}.{attr}")})  # type: ignore[attr-defined]
            if (isinstance(value, Local) and isinstance(value.node, ast.ClassDef)) or (
                isinstance(value, Ref) and class_name(value.name)
            ):
                return frozenset({Ref(f"builtins.object.{attr}")})  # unbound: a class's
            return frozenset({Bound(Ref(f"builtins.object.{attr}"), value)})
        if attr == "__dict__":
            return frozenset({Namespace(value)})
        if isinstance(value, Ref):
            return frozenset({Ref(canonical(f"{value.name}.{attr}"), value.instance)})
        if isinstance(value, Inst) and isinstance(value.cls, Ref):
            return frozenset({Ref(canonical(f"{value.cls.name}.{attr}"), True)})
        if isinstance(value, Inst | Local) and isinstance(
            cls := (value.cls if isinstance(value, Inst) else value), Local
        ) and isinstance(cls.node, ast.ClassDef):
            return self.member(cls.node, attr, isinstance(value, Inst), 0)
        if isinstance(value, Super):
            return self._bases_member(value.cls, attr, True, 0)
        if isinstance(value, Namespace) and attr in ("get", "__getitem__", "setdefault",
                                                     "pop", "__setitem__"):
            return frozenset({Bound(Ref(f"builtins.dict.{attr}"), value)})
        return NOTHING

    def member(self, cls: ast.ClassDef, attr: str, instance: bool, depth: int) -> Values:
        """What `C.attr` (or an instance's) is, for a class of this file."""
        if depth > 8 or cls not in self.table.class_scope:
            return NOTHING
        body = self.table.class_scope[cls]
        found: set[object] = set()
        if attr in body.bindings:
            found |= self.binding_values(body, attr)
        if instance and attr in self.table.instance_attrs.get(cls, {}):
            found |= self._all((id(cls), f"self.{attr}"), self.table.instance_attrs[cls][attr],
                               False)  # fmt: skip
        return frozenset(found) if found else self._bases_member(cls, attr, instance, depth)

    def _bases_member(self, cls: ast.ClassDef, attr: str, instance: bool, depth: int) -> Values:
        if not cls.bases:
            return frozenset({Ref(f"builtins.object.{attr}")})
        found: set[object] = set()
        for base in cls.bases:
            for value in self.values(base):
                if isinstance(value, Local) and isinstance(value.node, ast.ClassDef):
                    found |= self.member(value.node, attr, instance, depth + 1)
                elif isinstance(value, Ref):
                    found.add(Ref(canonical(f"{value.name}.{attr}"), instance))
                else:
                    found.add(UNKNOWN)
        return frozenset(found)

    def bases(self, cls: ast.ClassDef, depth: int = 0) -> set[str]:
        """The canonical names of the classes outside this file that `cls` derives from."""
        found: set[str] = set()
        for base in cls.bases if depth < 8 else []:
            for value in self.values(base):
                if isinstance(value, Ref):
                    found.add(value.name)
                elif isinstance(value, Local) and isinstance(value.node, ast.ClassDef):
                    found |= self.bases(value.node, depth + 1)
        return found

    def subscript(self, containers: Values, keys: Values) -> Values:
        found: set[object] = set()
        for container in containers:
            for key in keys:
                name = key.value if isinstance(key, Const) else None
                if isinstance(container, Const) and isinstance(key, Const):
                    found.add(Const(fold.subscript(container.value, key.value)))
                elif not isinstance(name, str):
                    found.add(UNKNOWN)
                elif isinstance(container, Namespace) and isinstance(container.owner, Scope):
                    found |= self.lookup(name, container.owner)
                elif isinstance(container, Namespace):
                    found |= self.attribute(container.owner, name)
                elif container == Ref("builtins"):
                    found.add(Ref(canonical(f"builtins.{name}")))
                elif container == Ref("sys.modules"):
                    found.add(Ref(canonical(name)))
                else:
                    found.add(UNKNOWN)
        return cap(found)


def _spine(node: ast.AST) -> ast.AST | None:
    if isinstance(node, ast.BinOp):
        return node.left
    if isinstance(node, ast.Attribute | ast.Subscript):
        return node.value
    if isinstance(node, ast.Call):
        return node.func
    return None
