"""Comparisons that can answer yes without comparing, and values that equal anything.

A comparison method is read path by path: each `return` (and falling off the end), with
the conditions it sits under (the tests of the ifs and loops around it, and of the
statements before it that could have returned instead). A path whose answer can be
"yes" (truthy for __eq__, __lt__, …, falsy for __ne__) must depend on both self and the
operand, through its value or its conditions, after a small constant propagation:
`True`, `not False`, `x == x`, `isinstance(o, object)`, a non-empty tuple, `X or True`,
`bool(o) or True` and a local helper that always returns truthy are constants that
depend on nothing. So `return True`, `other; return True`, `return isinstance(other,
int)` and `try: ... except AttributeError: return True` are lies, while `if self is
other: return True`, the loop that returns False on the first difference and then True,
and `return NotImplemented` are not.

Slightly over 400 lines: the path reading and the constant propagation it needs are one
analysis; split, each half would have to expose the other's internals."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from evolution.gate.guard.names import Resolver
from evolution.gate.guard.table import COMPARISONS, MOCK_CLASSES, SELF_ONLY
from evolution.gate.guard.values import Const, Inst, Local, Ref

_SAME_TRUE = (ast.Eq, ast.Is, ast.LtE, ast.GtE)
_SAME_FALSE = (ast.NotEq, ast.IsNot, ast.Lt, ast.Gt)
_NESTED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_PROPAGATE = {"builtins.dict", "builtins.list", "builtins.tuple", "builtins.set",
              "builtins.frozenset"}  # fmt: skip

Path = tuple[ast.expr | None, frozenset[str]]


def _boolish(node: ast.AST) -> bool:
    """An expression whose value is a bool (so a constant truth is a constant value)."""
    if isinstance(node, ast.Compare | ast.BoolOp) or (
        isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)
    ):
        return True
    if isinstance(node, ast.Constant):
        return isinstance(node.value, bool) or node.value is None
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and (
        node.func.id in ("isinstance", "issubclass", "bool", "callable", "hasattr")
    )


def _compares(node: ast.AST) -> bool:
    """A call of a comparison method (`a.__eq__(b)`): its answer is a bool or
    NotImplemented."""
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and (
        node.func.attr in COMPARISONS
    )


def _own(nodes: list[ast.stmt] | list[ast.AST]) -> Iterator[ast.AST]:
    stack = list(nodes)
    while stack:
        node = stack.pop()
        yield node
        stack += [c for c in ast.iter_child_nodes(node) if not isinstance(c, _NESTED)]


class _Method:
    def __init__(self, args: ast.arguments, body: list[ast.stmt], resolver: Resolver,
                 depth: int = 0, handlers_read_the_body: bool = False) -> None:  # fmt: skip
        self.resolver, self.depth, self.body = resolver, depth, body
        self.handlers_read_the_body = handlers_read_the_body
        names = [*args.posonlyargs, *args.args, *args.kwonlyargs]
        self.params = {a.arg for a in names} | {a.arg for a in (args.vararg, args.kwarg) if a}
        self.locals: dict[str, list[ast.expr | None]] = {}
        for node in _own(body):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    self._local(target, node.value)
            elif isinstance(node, ast.AnnAssign | ast.AugAssign | ast.NamedExpr) and node.value:
                self._local(node.target, node.value)
            elif isinstance(node, ast.For | ast.AsyncFor):
                self._local(node.target, node.iter)
            elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                self._local(node.optional_vars, node.context_expr)
        self._busy: set[str] = set()

    def _local(self, target: ast.AST, value: ast.expr | None) -> None:
        for name in ast.walk(target):
            if isinstance(name, ast.Name):
                self.locals.setdefault(name.id, []).append(value)

    # -- constants ---------------------------------------------------------------------------

    def truth(self, node: ast.expr | None) -> bool | None:
        """True or False when `node`'s truth is the same whatever the method is given."""
        if node is None:
            return False
        if isinstance(node, ast.Constant):
            return bool(node.value)
        if isinstance(node, ast.NamedExpr):
            return self.truth(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            inner = self.truth(node.operand)
            return None if inner is None else not inner
        if isinstance(node, ast.BoolOp):
            truths = [self.truth(v) for v in node.values]
            decisive = isinstance(node.op, ast.Or)
            if decisive in truths:
                return decisive
            return (not decisive) if all(t is not None for t in truths) else None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr | ast.BitAnd):
            truths = {self.truth(node.left), self.truth(node.right)}
            wanted = isinstance(node.op, ast.BitOr)
            return wanted if wanted in truths else None
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            return self._compare(node)
        if isinstance(node, ast.Tuple | ast.List | ast.Set | ast.Dict):
            items = node.keys if isinstance(node, ast.Dict) else node.elts
            if any(isinstance(i, ast.Starred) or i is None for i in items):
                return None
            return bool(items)
        if isinstance(node, ast.JoinedStr):
            literal = any(isinstance(v, ast.Constant) and v.value for v in node.values)
            return True if literal else None
        if isinstance(node, ast.IfExp):
            test = self.truth(node.test)
            if test is not None:
                return self.truth(node.body if test else node.orelse)
            body, orelse = self.truth(node.body), self.truth(node.orelse)
            return body if body == orelse else None
        if isinstance(node, ast.Lambda):
            return True
        if isinstance(node, ast.Name):
            return self._name_truth(node)
        if isinstance(node, ast.Call):
            return self._call_truth(node)
        return None

    def _compare(self, node: ast.Compare) -> bool | None:
        op, right = node.ops[0], node.comparators[0]
        if ast.dump(node.left) == ast.dump(right):
            if isinstance(op, _SAME_TRUE):
                return True
            if isinstance(op, _SAME_FALSE):
                return False
        if isinstance(right, ast.Constant) and right.value is None and isinstance(
            op, ast.Is | ast.IsNot
        ) and (_boolish(node.left) or _compares(node.left)):
            return isinstance(op, ast.IsNot)  # a comparison's answer is never None
        call = node.left
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and (
            call.func.id in ("len", "abs")
        ) and isinstance(right, ast.Constant) and right.value == 0:
            if isinstance(op, ast.GtE):
                return True
            if isinstance(op, ast.Lt):
                return False
        return None

    def _name_truth(self, node: ast.Name) -> bool | None:
        if node.id in self.params or node.id in self._busy:
            return None
        if node.id in self.locals:
            self._busy.add(node.id)
            try:
                truths = {self.truth(v) if v is not None else None for v in self.locals[node.id]}
            finally:
                self._busy.discard(node.id)
            return truths.pop() if len(truths) == 1 else None
        values = self.resolver.values(node)
        consts = {bool(v.value) for v in values if isinstance(v, Const)}
        if len(consts) == 1 and all(isinstance(v, Const) for v in values):
            return consts.pop()
        if values and all(isinstance(v, Local) for v in values):
            return True  # a function or class of this file
        return None

    def _call_truth(self, node: ast.Call) -> bool | None:
        funcs = self.resolver.values(node.func)
        names = {v.name for v in funcs if isinstance(v, Ref)}
        if names == {"builtins.bool"} and len(node.args) == 1:
            return self.truth(node.args[0])
        items = node.args[0].elts if len(node.args) == 1 and isinstance(
            node.args[0], ast.Tuple | ast.List | ast.Set) else node.args
        truths = [self.truth(i) for i in items]
        if names == {"builtins.any"} and True in truths and len(node.args) == 1:
            return True
        if names == {"builtins.all"} and False in truths and len(node.args) == 1:
            return False
        if names == {"builtins.max"} and any(
            isinstance(i, ast.Constant) and isinstance(i.value, bool | int) and i.value >= 1
            for i in items
        ):
            return True  # at least 1 whatever else it is given
        if names == {"builtins.isinstance"} and len(node.args) == 2:
            kinds = node.args[1].elts if isinstance(node.args[1], ast.Tuple) else [node.args[1]]
            if any(Ref("builtins.object") in self.resolver.values(k) for k in kinds):
                return True
        defs = [v.node for v in funcs if isinstance(v, Local)]
        if defs and len(defs) == len(funcs) and self.depth < 3:
            truths = {_always(d, self.resolver, self.depth + 1) for d in defs}
            return truths.pop() if len(truths) == 1 else None
        return None

    # -- what a value depends on -------------------------------------------------------------

    def deps(self, node: ast.AST | None) -> set[str]:
        """The parameters the truth of `node` depends on (none if it is constant)."""
        if node is None or (isinstance(node, ast.expr) and self.truth(node) is not None):
            return set()
        if isinstance(node, ast.BoolOp):
            return {d for v in node.values for d in self.deps(v)}
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return self.deps(node.operand)
        return self.reads(node)

    def reads(self, node: ast.AST | None) -> set[str]:
        """The parameters the value of `node` depends on."""
        if node is None or (_boolish(node) and self.truth(node) is not None):  # type: ignore[arg-type]
            return set()
        if isinstance(node, ast.Name):
            found = {node.id} & self.params
            if node.id in self.locals and node.id not in self._busy:
                self._busy.add(node.id)
                try:
                    for value in self.locals[node.id]:
                        found |= self.reads(value)
                finally:
                    self._busy.discard(node.id)
            return found
        if isinstance(node, ast.BoolOp):  # the operands up to the first that decides
            found, stop = set(), isinstance(node.op, ast.Or)
            for value in node.values:
                found |= self.reads(value)
                if self.truth(value) is stop:
                    break
            return found
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and (
            node.func.id == "super" and not node.args
        ):
            return set(self.params)  # zero-argument super() reads the instance
        return {d for child in ast.iter_child_nodes(node) for d in self.reads(child)}

    # -- paths -------------------------------------------------------------------------------

    def paths(self, stmts: list[ast.stmt], conds: frozenset[str],
              guarded: bool = False) -> tuple[list[Path], bool]:  # fmt: skip
        """Each return reachable in `stmts` with the parameters its conditions read, and
        whether the end of `stmts` is reachable. In a try's body (`guarded`), reaching a
        statement means the ones before it did not raise: what they read is a condition."""
        found: list[Path] = []
        for stmt in stmts:
            if isinstance(stmt, ast.Return):
                return found + self._split(stmt.value, conds), False
            if isinstance(stmt, ast.Raise):
                return found, False
            blocks, head = self._blocks(stmt)
            if not blocks:
                if guarded:
                    conds = conds | frozenset(self.reads(stmt))
                continue
            inner = conds | frozenset(self.deps(head) if isinstance(stmt, ast.If | ast.While)
                                      else self.reads(head))
            falls = True
            ends = []
            for index, block in enumerate(blocks):
                where = inner
                handler = isinstance(stmt, ast.Try | ast.TryStar) and 0 < index < len(blocks) - 1
                # a handler runs because the body raised: for __hash__ and __bool__ that
                # depends on what the body read; for a comparison, a yes given because
                # comparing failed is no evidence of equality
                if handler and self.handlers_read_the_body:
                    where = inner | {d for part in stmt.body for d in self.reads(part)}
                body = isinstance(stmt, ast.Try | ast.TryStar) and index == 0
                more, reached = self.paths(block, where, guarded or body)
                found += more
                ends.append(reached)
            if isinstance(stmt, ast.If):
                test = self.truth(stmt.test)
                falls = ends[0] if test is True else ends[1] if test is False else any(ends)
            elif isinstance(stmt, ast.Try | ast.TryStar):
                falls = ends[-1] if stmt.finalbody else any(ends[:-1])
            elif isinstance(stmt, ast.With | ast.AsyncWith):
                falls = any(ends)
            elif isinstance(stmt, ast.While) and self.truth(stmt.test) is True:
                falls = any(isinstance(n, ast.Break) for n in _own(stmt.body))
            if not falls:
                return found, False
            if any(isinstance(n, ast.Return | ast.Raise) for n in _own([stmt])):
                conds = inner | self._conditions(stmt)
        return found, True

    def _blocks(self, stmt: ast.stmt) -> tuple[list[list[ast.stmt]], ast.AST | None]:
        if isinstance(stmt, ast.If):
            test = self.truth(stmt.test)
            return [stmt.body if test is not False else [], stmt.orelse if test is not True
                    else []], stmt.test  # fmt: skip
        if isinstance(stmt, ast.For | ast.AsyncFor):
            return [stmt.body, stmt.orelse], stmt.iter
        if isinstance(stmt, ast.While):
            return [stmt.body, stmt.orelse], stmt.test
        if isinstance(stmt, ast.With | ast.AsyncWith):
            return [stmt.body], ast.Tuple([i.context_expr for i in stmt.items], ast.Load())
        if isinstance(stmt, ast.Try | ast.TryStar):
            return [stmt.body + stmt.orelse, *[h.body for h in stmt.handlers],
                    stmt.finalbody], None  # fmt: skip
        if isinstance(stmt, ast.Match):
            return [c.body for c in stmt.cases] + [[]], stmt.subject
        return [], None

    def _conditions(self, stmt: ast.stmt) -> frozenset[str]:
        found: set[str] = set()
        for node in _own([stmt]):
            if isinstance(node, ast.If | ast.While):
                found |= self.deps(node.test)
            elif isinstance(node, ast.For | ast.AsyncFor):
                found |= self.reads(node.iter)
            elif isinstance(node, ast.Match):
                found |= self.reads(node.subject)
            elif isinstance(node, ast.match_case) and node.guard is not None:
                found |= self.deps(node.guard)
            elif isinstance(node, ast.Try | ast.TryStar):  # whether the body raised
                found |= {d for part in node.body for d in self.reads(part)}
        return frozenset(found)

    def _split(self, value: ast.expr | None, conds: frozenset[str]) -> list[Path]:
        if isinstance(value, ast.IfExp):
            test = self.truth(value.test)
            inner = conds | frozenset(self.deps(value.test))
            arms = [value.body] if test is True else [value.orelse] if test is False else [
                value.body, value.orelse]
            return [p for arm in arms for p in self._split(arm, inner)]
        return [(value, conds)]


def _always(function: ast.AST, resolver: Resolver, depth: int) -> bool | None:
    """True or False when every return of a def of this file has that truth."""
    if isinstance(function, ast.Lambda):
        body: list[ast.stmt] = [ast.Return(function.body)]
    elif isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
        body = function.body
    else:
        return None
    method = _Method(function.args, body, resolver, depth)
    found, falls = method.paths(body, frozenset())
    truths = {method.truth(v) for v, _ in found} | ({False} if falls else set())
    return truths.pop() if len(truths) == 1 else None


def comparison_lie(name: str, function: ast.AST, resolver: Resolver) -> str:
    """Why the method `name` defined by `function` (a def or a lambda) lies, or ""."""
    if name not in COMPARISONS and name not in SELF_ONLY:
        return ""
    if isinstance(function, ast.Lambda):
        body: list[ast.stmt] = [ast.Return(function.body)]
    elif isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
        body = function.body
    else:
        return ""
    args = function.args
    positional = [a.arg for a in [*args.posonlyargs, *args.args]]
    rest = args.vararg.arg if args.vararg else ""
    me = positional[0] if positional else rest
    other = positional[1] if len(positional) > 1 else rest
    method = _Method(args, body, resolver, handlers_read_the_body=name in SELF_ONLY)
    found, falls = method.paths(body, frozenset())
    if falls:
        found.append((None, frozenset()))
    for value, conds in found:
        if isinstance(value, ast.Name) and value.id == "NotImplemented":
            continue
        seen = conds | (method.reads(value) if name in SELF_ONLY else method.deps(value))
        if name in SELF_ONLY:
            if value is not None and me not in seen:
                return f"{name} ignores self"
            continue
        truth = method.truth(value)
        if truth is (name == "__ne__"):
            continue  # the answer "not equal" (or "not less", …) needs no evidence
        if other not in seen and me in seen:
            return f"{name} ignores its operand"
        if other not in seen or me not in seen:
            answer = "yes" if name != "__ne__" else "no"
            return f"{name} answers {answer} without comparing self with its operand"
    return ""


def anything_returned(value: ast.expr, resolver: Resolver) -> str:
    """What equals anything in a returned value (its parts that flow out as they are)."""
    stack: list[ast.AST] = [value]
    while stack:
        node = stack.pop()
        for found in resolver.values(node):
            if isinstance(found, Inst) and isinstance(found.cls, Ref):
                if found.cls.name in MOCK_CLASSES:
                    return f"returns a {found.cls.name}"
            elif isinstance(found, Inst) and isinstance(found.cls, Local) and isinstance(
                found.cls.node, ast.ClassDef
            ) and resolver.bases(found.cls.node) & MOCK_CLASSES:
                return f"returns an instance of {found.cls.node.name}, a mock"
        if isinstance(node, ast.IfExp):
            stack += [node.body, node.orelse]
        elif isinstance(node, ast.BoolOp | ast.Tuple | ast.List | ast.Set):
            stack += node.values if isinstance(node, ast.BoolOp) else node.elts
        elif isinstance(node, ast.Dict):
            stack += node.values
        elif isinstance(node, ast.Starred | ast.NamedExpr):
            stack.append(node.value)
        elif isinstance(node, ast.Call) and {r for r in resolver.values(node.func)
                                             if isinstance(r, Ref) and r.name in _PROPAGATE}:
            stack += [*node.args, *[k.value for k in node.keywords]]
    return ""
