"""Constant folding: what an expression over literals computes, done on the values
themselves with pure operations only (string and bytes methods, arithmetic, chr, the
decoders of base64, binascii and codecs), each bounded in size, so that a string built at
run time from pieces is read as what it spells. Anything else raises Unfoldable."""

from __future__ import annotations

import base64
import binascii
import codecs
import operator
import re

MAX = 4096  # longest string, bytes or tuple a fold may build; largest int magnitude 2**64


class Unfoldable(Exception):
    pass


class FrozenMap(tuple):
    """A dict display of constants, hashable (items in order)."""

    def get(self, key: object, default: object = None) -> object:
        return next((v for k, v in self if k == key), default)


_BINOPS = {"Add": operator.add, "Sub": operator.sub, "Mult": operator.mul,
           "Mod": operator.mod, "FloorDiv": operator.floordiv, "Pow": operator.pow,
           "LShift": operator.lshift, "RShift": operator.rshift, "BitOr": operator.or_,
           "BitXor": operator.xor, "BitAnd": operator.and_}  # fmt: skip
_METHODS = {"join", "format", "replace", "upper", "lower", "casefold", "swapcase", "title",
            "capitalize", "strip", "lstrip", "rstrip", "removeprefix", "removesuffix",
            "split", "rsplit", "partition", "rpartition", "decode", "encode", "center",
            "ljust", "rjust", "zfill", "hex", "startswith", "endswith", "find", "index",
            "count", "__add__", "__mul__", "__mod__", "__getitem__", "__radd__",
            "translate", "maketrans"}  # fmt: skip
_CODECS = {"rot13", "rot_13", "hex", "hex_codec", "base64", "base64_codec", "utf-8", "utf8",
           "ascii", "latin-1", "latin1", "iso-8859-1", "utf-16", "utf-32", "unicode_escape",
           "raw_unicode_escape", "punycode", "idna", "utf_8", "cp1252"}  # fmt: skip
_DECODERS = {"base64.b64decode": base64.b64decode, "base64.standard_b64decode":
             base64.standard_b64decode, "base64.urlsafe_b64decode": base64.urlsafe_b64decode,
             "base64.b32decode": base64.b32decode, "base64.b16decode": base64.b16decode,
             "base64.b85decode": base64.b85decode, "base64.a85decode": base64.a85decode,
             "base64.b64encode": base64.b64encode, "base64.b32encode": base64.b32encode,
             "base64.b16encode": base64.b16encode, "binascii.unhexlify": binascii.unhexlify,
             "binascii.a2b_hex": binascii.a2b_hex, "binascii.hexlify": binascii.hexlify,
             "binascii.a2b_base64": binascii.a2b_base64,
             "builtins.bytes.fromhex": bytes.fromhex}  # fmt: skip
_FUNCTIONS = {"builtins.chr": chr, "builtins.ord": ord, "builtins.len": len,
              "builtins.hex": hex, "builtins.oct": oct, "builtins.bin": bin,
              "builtins.abs": abs, "builtins.repr": repr, "builtins.ascii": ascii}  # fmt: skip
FOLDED = {*_FUNCTIONS, *_DECODERS, "codecs.decode", "codecs.encode", "builtins.str",
          "builtins.bytes", "builtins.int", "builtins.list", "builtins.tuple",
          "builtins.reversed", "builtins.sorted", "builtins.sum"}  # fmt: skip
_BIG = re.compile(r"\d{5,}")  # a width or precision that would build a huge string
_FIELD = re.compile(r"\{[^{}:!]*[.\[]")


def check(value: object) -> object:
    if isinstance(value, bool | None | float):
        return value
    if isinstance(value, int):
        if abs(value) > 2**64:
            raise Unfoldable
        return value
    if isinstance(value, str | bytes | tuple):
        if len(value) > MAX:
            raise Unfoldable
        if isinstance(value, tuple):
            for item in value:
                check(item)
        return value
    if isinstance(value, bytearray):
        return check(bytes(value))
    if isinstance(value, list):
        return check(tuple(value))
    if isinstance(value, dict):
        return FrozenMap(check(tuple(value.items())))  # type: ignore[arg-type]
    raise Unfoldable


def _sized(*values: object, template: object = "") -> None:
    """Refuse counts that would build something huge, and a format template with a huge
    width or a field that reads attributes or items (`{0.__class__}`)."""
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX:
            raise Unfoldable
    if isinstance(template, bytes):
        template = template.decode("latin-1")
    if isinstance(template, str) and (_BIG.search(template) or _FIELD.search(template)):
        raise Unfoldable


def binop(op: str, left: object, right: object) -> object:
    if op == "Mult":
        for count, seq in ((left, right), (right, left)):
            sized = isinstance(count, int) and isinstance(seq, str | bytes | tuple)
            if sized and count * len(seq) > MAX:  # type: ignore[operator, arg-type]
                raise Unfoldable
    if op in ("Pow", "LShift") and (not isinstance(right, int) or abs(right) > 64):
        raise Unfoldable
    if op == "Mod" and isinstance(left, str | bytes):
        _sized(template=left)
        right = tuple(right) if isinstance(right, tuple) else right
    if op not in _BINOPS:
        raise Unfoldable
    try:
        return check(_BINOPS[op](left, right))
    except Unfoldable:
        raise
    except Exception as error:
        raise Unfoldable from error


def unary(op: str, value: object) -> object:
    try:
        return check({"USub": operator.neg, "UAdd": operator.pos, "Invert": operator.invert,
                      "Not": operator.not_}[op](value))  # fmt: skip
    except Exception as error:
        raise Unfoldable from error


def formatted(value: object, conversion: int, spec: str) -> str:
    _sized(template="{:" + spec + "}")
    if conversion == ord("r"):
        value = repr(value)
    elif conversion == ord("s"):
        value = str(value)
    elif conversion == ord("a"):
        value = ascii(value)
    try:
        return check(format(value, spec))  # type: ignore[return-value]
    except Exception as error:
        raise Unfoldable from error


def subscript(value: object, index: object) -> object:
    if isinstance(value, FrozenMap):
        return check(value.get(index, Unfoldable))
    if isinstance(index, SliceValue):
        index = slice(index.lower, index.upper, index.step)
    try:
        return check(value[index])  # type: ignore[index]
    except Exception as error:
        raise Unfoldable from error


class SliceValue(tuple):
    @property
    def lower(self) -> object:
        return self[0]

    @property
    def upper(self) -> object:
        return self[1]

    @property
    def step(self) -> object:
        return self[2]


def method(value: object, name: str, args: list[object], kwargs: dict[str, object]) -> object:
    """`value.name(*args)` for the pure methods of str and bytes."""
    if name not in _METHODS or not isinstance(value, str | bytes):
        raise Unfoldable
    _sized(*args, *kwargs.values(), template=value if name == "format" else "")
    if name in ("encode", "decode") and args and str(args[0]).lower() not in _CODECS:
        raise Unfoldable
    if name in ("join",) and args and not isinstance(args[0], tuple | str | bytes):
        raise Unfoldable
    try:
        result = getattr(value, name)(*args, **kwargs)
    except Exception as error:
        raise Unfoldable from error
    return check(result)


def call(name: str, args: list[object], kwargs: dict[str, object]) -> object:
    """What the function of canonical name `name` returns for constant arguments."""
    _sized(*args)
    try:
        if name in _FUNCTIONS:
            return check(_FUNCTIONS[name](*args, **kwargs))
        if name in _DECODERS:
            return check(_DECODERS[name](*args, **kwargs))
        if name in ("codecs.decode", "codecs.encode"):
            if len(args) > 1 and str(args[1]).lower() not in _CODECS:
                raise Unfoldable
            return check(getattr(codecs, name.split(".")[1])(*args, **kwargs))
        if name == "builtins.str" and len(args) == 1 and not kwargs:
            return check(str(args[0]))
        if name in ("builtins.str", "builtins.bytes") and args and (
            len(args) > 1 or isinstance(args[0], tuple)
        ):
            if len(args) > 1 and str(args[1]).lower() not in _CODECS:
                raise Unfoldable
            kind = str if name == "builtins.str" else bytes
            return check(kind(*args, **kwargs))  # type: ignore[call-overload]
        if name in ("builtins.int",) and args and isinstance(args[0], str | bytes | int):
            return check(int(*args, **kwargs))  # type: ignore[arg-type]
        if name in ("builtins.list", "builtins.tuple", "builtins.reversed", "builtins.sorted"):
            if not args:
                return ()
            items = args[0]
            if not isinstance(items, str | bytes | tuple):
                raise Unfoldable
            if name == "builtins.reversed":
                return check(tuple(reversed(items)))
            return check(tuple(sorted(items)) if name == "builtins.sorted" else tuple(items))
        if name == "builtins.sum" and args and isinstance(args[0], tuple):
            return check(sum(args[0], *args[1:]))
    except Unfoldable:
        raise
    except Exception as error:
        raise Unfoldable from error
    raise Unfoldable
