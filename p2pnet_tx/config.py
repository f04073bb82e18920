# -*- test-case-name: tests.test_config -*-
"""
The configuration file of C{twistd p2pnet --config FILE}: TOML whose keys are the long names of
the command-line options, without the dashes in front::

    listen = "tcp:8052"
    peer = ["127.0.0.1:8051", "node-b.example:8051"]
    name = "second"
    data-dir = "/var/lib/p2pnet"
    log-level = "warn"
    pin-names = true

An option given on the command line wins over the file.  An unknown key, a value of the wrong
type, a file that cannot be read or is not TOML is a L{ConfigError} whose one-line message names
the file (and the key).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from typing import Any

__all__ = ["CONFIG_KEYS", "ConfigError", "read_config"]

_STRING, _STRINGS, _INTEGER, _BOOLEAN = "a string", "a list of strings", "an integer", "true or false"
_NUMBER = "a number"

CONFIG_KEYS: Mapping[str, str] = {
    "listen": _STRING,
    "peer": _STRINGS,
    "name": _STRING,
    "wire": _STRING,
    "transport": _STRING,
    "trust": _STRING,
    "pin-names": _BOOLEAN,
    "allow-enhanced": _BOOLEAN,
    "no-default-communication": _BOOLEAN,
    "block-ip": _STRINGS,
    "data-dir": _STRING,
    "control": _STRING,
    "control-max-connections": _INTEGER,
    "log-level": _STRING,
    "discovery": _STRING,
    "discovery-interval": _NUMBER,
    "discovery-port": _INTEGER,
}
"""Each key a configuration file may hold, and what its value must be."""


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message is one line naming the file."""


def _type_name(value: object) -> str:
    return {str: "a string", bool: "a boolean", int: "an integer", float: "a number",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)


def _checked(path: str, key: str, value: Any) -> Any:
    kind = CONFIG_KEYS[key]
    if kind == _STRINGS and isinstance(value, str):
        value = [value]
    ok = {
        _STRING: isinstance(value, str),
        _STRINGS: isinstance(value, list) and all(isinstance(v, str) for v in value),
        _INTEGER: isinstance(value, int) and not isinstance(value, bool),
        _BOOLEAN: isinstance(value, bool),
        _NUMBER: isinstance(value, int | float) and not isinstance(value, bool),
    }[kind]
    if not ok:
        raise ConfigError(f"{path}: key '{key}' must be {kind}, not {_type_name(value)}")
    return value


def read_config(path: str) -> dict[str, Any]:
    """
    Read and check a configuration file.

    @param path: the file.
    @return: each key of the file and its value (a single string for a list key is made a
        list of one).
    @raise ConfigError: if the file cannot be read, is not TOML, or has an unknown key or a
        value of the wrong type.
    """
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not valid TOML: it is not UTF-8 text") from None
    checked = {}
    for key, value in data.items():
        if key not in CONFIG_KEYS:
            hint = " (write option names with dashes, e.g. data-dir)" if "_" in key else ""
            raise ConfigError(
                f"{path}: unknown key {key!r}{hint}; known keys: {', '.join(CONFIG_KEYS)}"
            )
        checked[key] = _checked(path, key, value)
    return checked
