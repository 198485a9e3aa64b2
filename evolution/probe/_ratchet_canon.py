"""What a value is, said without asking it: the canonical form the gate compares
behaviour by, and the recorder of calls into changed functions.

A value returned by code under test may lie about itself: an `__eq__` that answers yes
to anything, a `__repr__` or `__reduce__` that describes another value. So nothing here
calls a method the value's class could define. `type()` gives the real class (it reads
the object's header, not `__class__`); built-in values are walked structurally; any
other object is its class's qualified name and the canonical form of its instance
dictionary and slots, read with `object.__getattribute__`. Two values have the same
canonical form only if they are of the same types, all the way down, with the same
built-in contents.

Standard library only: the replay imports this in an interpreter with no test machinery.
"""

import base64
import hashlib
import json
import math
import pickle

_GET = object.__getattribute__
_TYPE_GET = type.__getattribute__  # a metaclass's own __getattribute__ is not asked
_SCALARS = (int, str, bytes, bool, type(None), complex)
MAX_DEPTH = 12
MAX_ITEMS = 2000
MAX_ARGS = 65536  # bytes of pickled arguments kept for one call
# Characters of one canonical form: a replay frame holds up to 13 of them, under 1 MiB.
MAX_FORM = 49152


def _name(kind):
    return f"{_TYPE_GET(kind, '__module__')}.{_TYPE_GET(kind, '__qualname__')}"


def canon(value):
    """A JSON-able, type-tagged structure; equal only for values equal in type and
    content, computed without calling any method the value's class could define. A form
    longer than `MAX_FORM` (a module, a large table) is replaced by its digest: still
    equal only for equal forms, and every frame stays within the channel's limit."""
    form = _canon(value)
    text = json.dumps(form, sort_keys=True)
    if len(text) <= MAX_FORM:
        return form
    return ["digest", form[1] if len(form) > 1 and isinstance(form[1], str) else form[0],
            hashlib.sha256(text.encode()).hexdigest()]


def _canon(value, _depth=0, _seen=None):
    kind = type(value)
    if _depth > MAX_DEPTH:
        return ["deep", _name(kind)]
    if kind in _SCALARS:
        return [kind.__name__, repr(value) if kind is not str else value]
    if kind is float:
        return ["float", "nan" if math.isnan(value) else repr(value)]
    _seen = _seen or set()
    if id(value) in _seen:
        return ["cycle", _name(kind)]
    _seen = _seen | {id(value)}
    if kind in (list, tuple):
        items = list.__iter__(value) if kind is list else tuple.__iter__(value)
        return [kind.__name__, [_canon(v, _depth + 1, _seen) for v in _first(items)]]
    if kind in (set, frozenset):
        parts = [_canon(v, _depth + 1, _seen) for v in _first(frozenset.__iter__(frozenset(value)))]
        return [kind.__name__, sorted(parts, key=repr)]
    if kind is dict:
        pairs = dict.items(value)
        return ["dict", [[_canon(k, _depth + 1, _seen), _canon(v, _depth + 1, _seen)]
                         for k, v in _first(iter(pairs))]]
    if isinstance(value, type):
        return ["class", _name(value)]
    if isinstance(value, BaseException):
        return ["raised", _name(kind), _canon(BaseException.args.__get__(value), _depth + 1, _seen)]
    fields = []
    for base in (int, float, complex, str, bytes):  # a built-in's subclass: its own content
        if isinstance(value, base):  # read by the base's C method, not the subclass's
            fields.append([base.__name__, base.__repr__(value)])
    for base in (list, tuple):
        if isinstance(value, base):
            fields.append(_canon(list(base.__iter__(value)), _depth + 1, _seen))
    if isinstance(value, dict):
        fields.append(_canon(dict(dict.items(value)), _depth + 1, _seen))
    try:
        state = _GET(value, "__dict__")
    except (AttributeError, TypeError):
        state = None
    if type(state) is dict:
        fields.append(_canon(state, _depth + 1, _seen))
    for klass in _TYPE_GET(kind, "__mro__"):
        slots = _TYPE_GET(klass, "__dict__").get("__slots__", ())
        for slot in (slots,) if type(slots) is str else tuple(slots):
            try:
                fields.append([slot, _canon(_GET(value, slot), _depth + 1, _seen)])
            except AttributeError:
                fields.append([slot, None])
    return ["object", _name(kind), fields]


def _first(items):
    for count, item in enumerate(items):
        if count >= MAX_ITEMS:
            return
        yield item


def raised(exc):
    """The canonical form of a call that ended by raising `exc`."""
    return canon(exc) if isinstance(exc, BaseException) else ["raised", "?", []]


def pack_args(args, kwargs):
    """The arguments of a call as base64 pickle, or None when they cannot be captured
    (not picklable, or too large)."""
    try:
        data = pickle.dumps((args, kwargs), protocol=4)
    except Exception:  # whatever pickling raises, the call is not captured
        return None
    return base64.b64encode(data).decode() if len(data) <= MAX_ARGS else None


def arguments(frame):
    """(args, kwargs) of the call a frame is starting, read from its locals at the call
    event, before the body ran."""
    code = frame.f_code
    local = frame.f_locals
    positional = code.co_argcount
    names = code.co_varnames
    args = [local[n] for n in names[:positional]]
    kwargs = {n: local[n] for n in names[positional:positional + code.co_kwonlyargcount]}
    index = positional + code.co_kwonlyargcount
    if code.co_flags & 0x04:  # *args
        args.extend(local[names[index]])
        index += 1
    if code.co_flags & 0x08:  # **kwargs
        kwargs.update(local[names[index]])
    return tuple(args), kwargs
