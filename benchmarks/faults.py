"""One-line faults of the kinds real Python bugs take, for the repair benchmark.

The kinds are the 20 single-statement bug patterns of TSSB-3M (Richter & Wehrheim,
"TSSB-3M: Mining single statement bugs at massive scale", MSR 2022), the Python
successor of ManySStuBs4J. Each pattern names a *fix*; the fault injected is the state
before that fix (for "Same Function More Args", a call missing an argument). A kind is
drawn in proportion to how often its fix occurs among TSSB-3M's 3 million bug fixes
(the counts below, in thousands), so the benchmark's mix is the mix of real bugs, not
the mix our operators were written for. "Change Constant Type" is left out: the paper's
examples of it are type-annotation changes, which change no behaviour a test sees.

The injector is deliberately separate from `mutate`'s operators: it picks replacement
names from any identifier the function mentions, not from what the repair's scope
analysis would offer.
"""

from __future__ import annotations

import ast
import random
from collections.abc import Callable

from evolution.mutate.source import Edit, Source, apply_edits

TSSB3M_THOUSANDS: dict[str, int] = {
    "Change Identifier Used": 237, "Change Binary Operand": 174,
    "Same Function More Args": 150, "Wrong Function Name": 134,
    "Add Function Around Expression": 117, "Change Attribute Used": 104,
    "Change Numeric Literal": 97, "More Specific If": 68, "Add Method Call": 60,
    "Add Elements To Iterable": 57, "Same Function Less Args": 50,
    "Change Boolean Literal": 37, "Add Attribute Access": 32, "Change Binary Operator": 29,
    "Same Function Wrong Caller": 25, "Less Specific If": 22,
    "Change Keyword Argument Used": 20, "Change Unary Operator": 15,
    "Same Function Swap Args": 8,
}  # fmt: skip
BINARY_CLASSES = (
    (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod),
    (ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Eq, ast.NotEq),
    (ast.In, ast.NotIn), (ast.Is, ast.IsNot), (ast.And, ast.Or),
)
SYMBOL = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//",
          ast.Mod: "%", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
          ast.Eq: "==", ast.NotEq: "!=", ast.In: "in", ast.NotIn: "not in", ast.Is: "is",
          ast.IsNot: "is not", ast.And: "and", ast.Or: "or"}  # fmt: skip
Site = tuple[int, int, str]  # start, end, replacement
Injector = Callable[[ast.AST, Source, ast.AST], list[Site]]


def _identifiers(function: ast.AST) -> list[str]:
    found = {n.id for n in ast.walk(function) if isinstance(n, ast.Name)}
    found |= {a.arg for a in ast.walk(function) if isinstance(a, ast.arg)}
    return sorted(found - {"self", "cls"})


def _attrs(tree: ast.AST, called: bool) -> list[str]:
    calls = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    return sorted({n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
                   and (id(n) in calls) == called and not n.attr.startswith("__")})


def _attr_span(src: Source, node: ast.Attribute) -> tuple[int, int]:
    end = src.span(node)[1]
    return end - len(node.attr.encode()), end


def _is_called(node: ast.AST, tree: ast.AST) -> bool:
    return any(isinstance(n, ast.Call) and n.func is node for n in ast.walk(tree))


def identifier(node: ast.AST, src: Source, fn: ast.AST) -> list[Site]:
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id != "self":
        return [(*src.span(node), other) for other in _identifiers(fn) if other != node.id]
    return []


def binary_operand(node: ast.AST, src: Source, fn: ast.AST) -> list[Site]:
    operands = (node.left, node.right) if isinstance(node, ast.BinOp) else (
        (node.left, *node.comparators) if isinstance(node, ast.Compare) else ())
    sites = []
    for operand in operands:
        if isinstance(operand, ast.Name | ast.Constant | ast.Attribute):
            text = src.of(operand)
            sites += [(*src.span(operand), o) for o in _identifiers(fn) if o != text]
    return sites


def _call_args(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, ast.Call) and not any(isinstance(a, ast.Starred) for a in node.args):
        return [*node.args, *[k for k in node.keywords if k.arg]]
    return []


def more_args(node: ast.AST, src: Source, fn: ast.AST) -> list[Site]:
    """The call before the fix lacks an argument: drop one."""
    args = _call_args(node)
    sites = []
    for index, arg in enumerate(args):
        start, end = src.span(arg) if not isinstance(arg, ast.keyword) else (
            src.offset(arg.lineno, arg.col_offset), src.span(arg.value)[1])
        if index + 1 < len(args):
            nxt = args[index + 1]
            end = src.offset(nxt.lineno, nxt.col_offset)
        elif index > 0:
            prev = args[index - 1]
            start = src.span(prev.value if isinstance(prev, ast.keyword) else prev)[1]
        sites.append((start, end, ""))
    return sites


def function_name(node: ast.AST, src: Source, fn: ast.AST) -> list[Site]:
    if not isinstance(node, ast.Call):
        return []
    if isinstance(node.func, ast.Name):
        called = sorted({n.func.id for n in ast.walk(src.tree) if isinstance(n, ast.Call)
                         and isinstance(n.func, ast.Name)} - {node.func.id})
        return [(*src.span(node.func), other) for other in called]
    if isinstance(node.func, ast.Attribute):
        return [(*_attr_span(src, node.func), other) for other in _attrs(src.tree, True)
                if other != node.func.attr]
    return []


def around_expression(node: ast.AST, src: Source, fn: ast.AST) -> list[Site]:
    """The fix wraps an expression in a call: the fault is the bare expression."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and len(node.args) == 1
            and not node.keywords and not isinstance(node.args[0], ast.Starred)):
        return [(*src.span(node), src.of(node.args[0]))]
    return []


def attribute(node: ast.AST, src: Source, fn: ast.AST) -> list[Site]:
    if isinstance(node, ast.Attribute) and not _is_called(node, src.tree) and isinstance(
            node.ctx, ast.Load):
        return [(*_attr_span(src, node), other) for other in _attrs(src.tree, False)
                if other != node.attr]
    return []


def numeric_literal(node: ast.AST, src: Source, fn: ast.AST) -> list[Site]:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return [(*src.span(node), str(node.value + d)) for d in (1, -1)]
    return []


def more_specific_if(node: ast.AST, src: Source, fn: ast.AST) -> list[Site]:
    """The fix adds a conjunct to a condition: the fault lacks it."""
    test = getattr(node, "test", None) if isinstance(node, ast.If | ast.While) else None
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        return [(*src.span(test), " and ".join(src.of(v) for v in test.values if v is not d))
                for d in test.values]
    return []


def method_call(node: ast.AST, src: Source, fn: ast.AST) -> list[Site]:
    """The fix adds `.m(...)`: the fault is the expression without it."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        receiver = node.func.value
        if not isinstance(receiver, ast.Name) or receiver.id not in ("self", "cls"):
            return [(*src.span(node), src.of(receiver))]
    return []


def iterable_elements(node: ast.AST, src: Source, fn: ast.AST) -> list[Site]:
    if isinstance(node, ast.List | ast.Tuple | ast.Set) and len(node.elts) >= 2 and isinstance(
            getattr(node, "ctx", ast.Load()), ast.Load):
        return [(*src.span(node), _bracketed(node, ", ".join(
            src.of(e) for e in node.elts if e is not dropped))) for dropped in node.elts]
    return []


def _bracketed(node: ast.AST, inner: str) -> str:
    if isinstance(node, ast.List):
        return f"[{inner}]"
    if isinstance(node, ast.Set):
        return f"{{{inner}}}"
    return f"({inner},)" if "," not in inner else f"({inner})"


def less_args(node: ast.AST, src: Source, fn: ast.AST) -> list[Site]:
    """The fix removes an argument: the fault passes one too many."""
    if isinstance(node, ast.Call) and node.args and not node.keywords:
        end = src.span(node.args[-1])[1]
        return [(end, end, f", {name}") for name in _identifiers(fn)]
    return []


def boolean_literal(node: ast.AST, src: Source, fn: ast.AST) -> list[Site]:
    if isinstance(node, ast.Constant) and isinstance(node.value, bool):
        return [(*src.span(node), str(not node.value))]
    return []


def attribute_access(node: ast.AST, src: Source, fn: ast.AST) -> list[Site]:
    if isinstance(node, ast.Attribute) and not _is_called(node, src.tree) and isinstance(
            node.ctx, ast.Load) and not (isinstance(node.value, ast.Name)
                                         and node.value.id in ("self", "cls")):
        return [(*src.span(node), src.of(node.value))]
    return []


def binary_operator(node: ast.AST, src: Source, fn: ast.AST) -> list[Site]:
    if isinstance(node, ast.BinOp):
        op, left, right = node.op, node.left, node.right
    elif isinstance(node, ast.Compare) and len(node.ops) == 1:
        op, left, right = node.ops[0], node.left, node.comparators[0]
    elif isinstance(node, ast.BoolOp) and len(node.values) == 2:
        op, left, right = node.op, node.values[0], node.values[1]
    else:
        return []
    group = next((g for g in BINARY_CLASSES if type(op) in g), ())
    site = src.token_in_gap(src.span(left)[1], src.span(right)[0], SYMBOL[type(op)]) if (
        type(op) in SYMBOL) else None
    if site is None:
        return []
    return [(*site, SYMBOL[other]) for other in group if other is not type(op)]


def wrong_caller(node: ast.AST, src: Source, fn: ast.AST) -> list[Site]:
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)):
        receiver = node.func.value
        return [(*src.span(receiver), other) for other in _identifiers(fn)
                if other != receiver.id]
    return []


def less_specific_if(node: ast.AST, src: Source, fn: ast.AST) -> list[Site]:
    """The fix removes a condition: the fault has an extra one."""
    if isinstance(node, ast.If | ast.While):
        text = src.of(node.test)
        text = f"({text})" if isinstance(node.test, ast.BoolOp | ast.IfExp) else text
        return [(*src.span(node.test), f"{text} and {name}") for name in _identifiers(fn)]
    return []


def keyword_argument(node: ast.AST, src: Source, fn: ast.AST) -> list[Site]:
    if not isinstance(node, ast.Call):
        return []
    used = sorted({k.arg for n in ast.walk(src.tree) if isinstance(n, ast.Call)
                   for k in n.keywords if k.arg})
    sites = []
    for keyword in node.keywords:
        if keyword.arg:
            start = src.offset(keyword.lineno, keyword.col_offset)
            end = start + len(keyword.arg)
            sites += [(start, end, other) for other in used if other != keyword.arg]
    return sites


def unary_operator(node: ast.AST, src: Source, fn: ast.AST) -> list[Site]:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.USub):
        return [(*src.span(node), src.of(node.operand))]
    if isinstance(node, ast.If | ast.While):
        return [(*src.span(node.test), f"not ({src.of(node.test)})")]
    return []


def swap_args(node: ast.AST, src: Source, fn: ast.AST) -> list[Site]:
    if isinstance(node, ast.Call) and len(node.args) >= 2 and not any(
            isinstance(a, ast.Starred) for a in node.args):
        a, b = node.args[0], node.args[1]
        gap = src.text(src.span(a)[1], src.span(b)[0])
        return [(src.span(a)[0], src.span(b)[1], f"{src.of(b)}{gap}{src.of(a)}")]
    return []


INJECTORS: dict[str, Injector] = {
    "Change Identifier Used": identifier, "Change Binary Operand": binary_operand,
    "Same Function More Args": more_args, "Wrong Function Name": function_name,
    "Add Function Around Expression": around_expression,
    "Change Attribute Used": attribute, "Change Numeric Literal": numeric_literal,
    "More Specific If": more_specific_if, "Add Method Call": method_call,
    "Add Elements To Iterable": iterable_elements, "Same Function Less Args": less_args,
    "Change Boolean Literal": boolean_literal, "Add Attribute Access": attribute_access,
    "Change Binary Operator": binary_operator, "Same Function Wrong Caller": wrong_caller,
    "Less Specific If": less_specific_if, "Change Keyword Argument Used": keyword_argument,
    "Change Unary Operator": unary_operator, "Same Function Swap Args": swap_args,
}  # fmt: skip


def draw_kind(rng: random.Random) -> str:
    kinds = sorted(TSSB3M_THOUSANDS)
    return rng.choices(kinds, weights=[TSSB3M_THOUSANDS[k] for k in kinds])[0]


def inject(source: str, line: int, kind: str, rng: random.Random) -> Edit | None:
    """One fault of `kind` on `line` (inside a function), chosen by `rng`, or None."""
    src = Source(source)
    functions = [n for n in ast.walk(src.tree) if isinstance(
        n, ast.FunctionDef | ast.AsyncFunctionDef) and n.body[0].lineno <= line <= (
        n.end_lineno or 0)]  # fmt: skip
    if not functions:
        return None
    function = min(functions, key=lambda f: (f.end_lineno or 0) - f.lineno)
    sites: list[Site] = []
    for node in ast.walk(function):
        if getattr(node, "lineno", None) == line and getattr(node, "end_lineno", None) == line:
            sites += INJECTORS[kind](node, src, function)
    rng.shuffle(sites)
    for start, end, text in sites:
        edit = Edit(start, end, text, kind, line, f"{kind} at line {line}")
        if src.text(start, end) == text:
            continue
        try:
            ast.parse(apply_edits(source, [edit]))
        except SyntaxError:
            continue
        return edit
    return None
