# -*- test-case-name: tests.test_wire -*-
"""
JSON as the wire reads and writes it: typed field readers, the .NET writer and the JSON of a
task.

This module sits below both L{p2pnet_tx.packets} and L{p2pnet_tx.wire}, so that packets can
(de)serialise a L{p2pnet_tx.packets.NetworkTask} without importing the codecs, which import the
packets.  It imports neither, and no Twisted: plain functions of bytes and JSON values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import orjson

from p2pnet_tx.errors import MalformedPacket

__all__ = [
    "Invalid",
    "JSONText",
    "dotnet_dumps",
    "dotnet_string",
    "field",
    "loads",
    "read_task",
    "required",
    "str_dict",
    "write_task",
]


class Invalid(Exception):
    """A packet object does not have the shape WIRE.md requires; carries the reason."""


# -- Reading fields -----------------------------------------------------------------------------


def loads(raw: bytes | bytearray | memoryview) -> Any:
    """
    Parse JSON.

    @raise Invalid: if C{raw} is not one JSON value (orjson refuses NaN, lone surrogates, a BOM
        and nesting deeper than 1,024 levels).
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise Invalid(f"invalid JSON: {e}") from None


def field(obj: Mapping[str, Any], name: str, kind: type, default: Any) -> Any:
    """
    Return an optional field of exactly the JSON type C{kind}; missing or null means C{default}.

    @raise Invalid: if the field has another type.
    """
    value = obj.get(name)
    if type(value) is kind:
        return value
    if value is None:
        return default
    raise Invalid(f"field {name!r} must be {kind.__name__}, not {type(value).__name__}")


def required(obj: Mapping[str, Any], name: str, kind: type) -> Any:
    """
    Return a required field of exactly the JSON type C{kind}.

    @raise Invalid: if the field is missing, null or of another type.
    """
    value = obj.get(name)
    if type(value) is kind:
        return value
    if value is None:
        raise Invalid(f"required field {name!r} is missing")
    raise Invalid(f"field {name!r} must be {kind.__name__}, not {type(value).__name__}")


def str_dict(obj: Mapping[str, Any], name: str) -> dict[str, str] | None:
    """
    Return an optional object field whose values are all strings, or None.

    @raise Invalid: if the field is not an object, or one of its values is not a string.
    """
    value = field(obj, name, dict, None)
    if value is not None:
        for item in value.values():
            if type(item) is not str:
                raise Invalid(f"field {name!r} must map strings to strings")
    return value


# -- Tasks --------------------------------------------------------------------------------------

_TaskType = TypeVar("_TaskType")


def read_task(
    raw: bytes, task_type: Callable[[int], _TaskType]
) -> tuple[_TaskType, dict[str, str]]:
    """
    Read the JSON of a task: C{{"TaskType": int, "TaskData": {str: str}}}.

    @param task_type: turns the number into a task type (the L{p2pnet_tx.packets.TaskType}
        enumeration); a C{ValueError} from it means the number has no meaning.
    @return: the task type and the task data (empty when missing or null).
    @raise MalformedPacket: if C{raw} is not such JSON; its C{raw} is C{raw}.
    """
    try:
        obj = loads(raw)
        if type(obj) is not dict:
            raise Invalid(f"a task must be a JSON object, not {type(obj).__name__}")
        number = required(obj, "TaskType", int)
        try:
            kind = task_type(number)
        except ValueError:
            raise Invalid(f"field 'TaskType' has no meaning: {number}") from None
        return kind, str_dict(obj, "TaskData") or {}
    except Invalid as e:
        raise MalformedPacket(str(e), bytes(raw)) from None


def write_task(task_type: int, task_data: Mapping[str, str]) -> bytes:
    """Write the JSON of a task as the reference does (.NET-escaped)."""
    return dotnet_dumps({"TaskType": int(task_type), "TaskData": task_data}).encode("ascii")


# -- .NET JSON escaping --------------------------------------------------------------------------

# What System.Text.Json's default encoder escapes: everything outside printable ASCII, the
# HTML-sensitive characters, and the backslash and backtick.
_DOTNET_UNSAFE = re.compile(r"[^\x20-\x7e]|[<>&'+\"\\`]")
_SHORT_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r", "\\": "\\\\"}


def _dotnet_escape(char: str) -> str:
    """The .NET escape of one character that _DOTNET_UNSAFE matches."""
    short = _SHORT_ESCAPES.get(char)
    if short is not None:
        return short
    code = ord(char)
    if code > 0xFFFF:
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04X}\\u{0xDC00 + (code & 0x3FF):04X}"
    if 0xD800 <= code <= 0xDFFF:
        # A lone surrogate is no character: System.Text.Json writes U+FFFD in its place.
        return "\\uFFFD"
    return f"\\u{code:04X}"


_SAFE_ASCII = bytes(code for code in range(0x20, 0x7F) if chr(code) not in "<>&'+\"\\`")
"""The ASCII characters .NET writes as they are."""

_ASCII_ESCAPES = {
    code: _dotnet_escape(chr(code)) for code in range(0x80) if code not in _SAFE_ASCII
}
_search_unsafe = _DOTNET_UNSAFE.search


def dotnet_string(text: str) -> str:
    """Return C{text} as a JSON string literal, escaped as .NET's default encoder does."""
    if text.isascii():
        # One C-speed pass finds the characters to escape; then one replace per distinct one.
        # (A regex, or str.isprintable, is several times slower on long strings.)
        unsafe = text.encode("ascii").translate(None, _SAFE_ASCII)
        if not unsafe:
            return '"' + text + '"'
        codes = set(unsafe)
        if 0x5C in codes:  # the backslash first: the other escapes bring backslashes in
            codes.discard(0x5C)
            text = text.replace("\\", "\\\\")
        for code in codes:
            text = text.replace(chr(code), _ASCII_ESCAPES[code])
        return '"' + text + '"'
    table = {ord(char): _dotnet_escape(char) for char in set(text) if _search_unsafe(char)}
    return '"' + text.translate(table) + '"'


class JSONText(str):
    """A JSON string literal already escaped the .NET way, which L{dotnet_dumps} writes as is."""


_FIELD_KEYS = {
    name: dotnet_string(name) + ":"
    for name in (
        "Message", "Data", "IP", "Port", "Timestamp", "peers", "DataType", "$type", "Address",
        "Identifier", "SourceOriginIdentifier", "SourceOriginTime", "TaskType", "TaskData",
    )
}
"""The JSON of the wire's field names, followed by ":" (only these: other keys are unbounded)."""


def dotnet_dumps(value: Any) -> str:
    """
    Serialize the JSON values packets use, as .NET's default encoder writes them.

    @raise TypeError: for a value that is not a str, int, bool, None, dict or list.
    """
    kind = type(value)
    if kind is str:
        return dotnet_string(value)
    if kind is JSONText:
        return value
    if kind is dict:
        keys = _FIELD_KEYS
        return (
            "{"
            + ",".join(
                [
                    (keys.get(key) or dotnet_string(key) + ":") + dotnet_dumps(item)
                    for key, item in value.items()
                ]
            )
            + "}"
        )
    if kind is int:
        return str(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return dotnet_string(value)
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, dict):
        return dotnet_dumps(dict(value))
    if isinstance(value, list):
        return "[" + ",".join([dotnet_dumps(item) for item in value]) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as packet JSON")
