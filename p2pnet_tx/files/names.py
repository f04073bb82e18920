# -*- test-case-name: tests.test_files_names -*-
"""
Safe file names for what a peer sends: the name in its manifest is data, never a path.

L{safe_name} neutralises a name so that it can only ever name one file directly inside the
files directory, on POSIX and Windows alike: path separators of both kinds and C{..} cannot
reach a parent (only the last path component is kept), control and format characters are
dropped, a Windows device name (C{CON}, C{NUL}, C{COM1}...) gets a C{_} prefix, leading dots
(hidden files, C{.} and C{..}) and trailing dots and spaces are stripped, characters Windows
refuses are replaced with C{_}, and the result is cut to L{MAX_NAME_BYTES} bytes of UTF-8,
keeping its extension.  L{check_name} refuses what is not worth neutralising.
"""

from __future__ import annotations

import re
import unicodedata

from p2pnet_tx.errors import P2PNetError

__all__ = ["MAX_NAME_BYTES", "MAX_OFFERED_NAME", "UnsafeName", "check_name", "safe_name"]

MAX_NAME_BYTES = 200
"""The longest stored name, in bytes of UTF-8 (file systems allow 255; room for C{" (99)"})."""

MAX_OFFERED_NAME = 1024
"""The longest name accepted in a manifest, in characters; longer ones are refused."""

_WINDOWS_DEVICES = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"{kind}{n}" for kind in ("COM", "LPT") for n in "0123456789¹²³"]
)
_WINDOWS_REFUSED = re.compile(r'[<>:"|?*]')
_DEFAULT_NAME = "file"


class UnsafeName(P2PNetError, ValueError):
    """A file name refused outright (not a string, empty, or absurdly long)."""


def check_name(name: object) -> str:
    """
    Return C{name} if it is a name worth neutralising: a non-empty str of at most
    L{MAX_OFFERED_NAME} characters with no NUL.

    @raise UnsafeName: otherwise, saying why.
    """
    if type(name) is not str:
        raise UnsafeName(f"a file name must be a string, not {type(name).__name__}")
    if not name:
        raise UnsafeName("the file name is empty")
    if len(name) > MAX_OFFERED_NAME:
        raise UnsafeName(f"the file name has {len(name)} characters (at most {MAX_OFFERED_NAME})")
    if "\x00" in name:
        raise UnsafeName("the file name contains a NUL character")
    return name


def _printable(text: str) -> str:
    # Cc: control characters; Cf: format characters (bidi overrides, zero-width); Cs: lone
    # surrogates; Zl/Zp: line and paragraph separators.
    return "".join(
        c for c in text if unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Zl", "Zp")
    )


def _cut(name: str, limit: int) -> str:
    """C{name} cut to C{limit} bytes of UTF-8, its extension (if short) kept."""
    if len(name.encode("utf-8")) <= limit:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension.encode("utf-8")) > 16:
        stem, extension = name, ""
    else:
        extension = "." + extension
    room = limit - len(extension.encode("utf-8"))
    cut = stem.encode("utf-8")[:room].decode("utf-8", "ignore").rstrip(". ")
    return (cut or _DEFAULT_NAME) + extension


def safe_name(name: str) -> str:
    """
    Neutralise C{name} into one safe file name (see the module docstring); never empty.

    @param name: a name a peer chose, already through L{check_name}.
    """
    text = unicodedata.normalize("NFC", name)
    text = re.split(r"[/\\]", text)[-1]  # the last component: no directory, no drive path
    text = _printable(text)
    text = _WINDOWS_REFUSED.sub("_", text)
    text = text.strip(" ").lstrip(".").rstrip(". ")
    if not text:
        return _DEFAULT_NAME
    stem = text.split(".", 1)[0].rstrip(" ").upper()
    if stem in _WINDOWS_DEVICES:
        text = "_" + text
    return _cut(text, MAX_NAME_BYTES)
