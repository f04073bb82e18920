# -*- test-case-name: tests.test_tasks -*-
"""
Network tasks signed by a bootstrap authority: the record, its signature, and the checks a
node makes before it executes one.

A signed task is the JSON object C{{"task": TASK, "signature": SIG}} where C{TASK} is::

    {"id": "<32 hex>", "task_type": <int>, "data": {str: str},
     "target": "<identifier>" | "*", "issued": <unix s>, "expires": <unix s>}

and C{SIG} is the standard, padded base64 of the Ed25519 signature of
C{b"p2pnet-task-v1\\n" + canonical(TASK)} by the authority's key (L{canonical}: sorted keys, no
spaces, ASCII).  C{task_type} numbers are the .NET C{TaskType} enumeration's
(L{p2pnet_tx.packets.TaskType}).

A node executes a task only if L{verify_task} accepts its signature against the configured
authority key and L{check_task} accepts its time window, its target and its id (never executed
before: a L{ReplayCache} remembers ids until they expire).  Each refusal is a L{TaskRejected}
naming its C{cause}, which the node logs and counts.

This module does no I/O and imports no Twisted: time is always passed in.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import json
import math
import re
import secrets
from collections.abc import Mapping
from typing import Any

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from p2pnet_tx.identity import is_key_identifier
from p2pnet_tx.packets import TaskType  # noqa: F401 (re-exported)

__all__ = [
    "ANY_TARGET",
    "CLOCK_SKEW",
    "MAX_TASK_LIFETIME",
    "TASK_DOMAIN",
    "AuthorityTask",
    "ReplayCache",
    "TaskRejected",
    "canonical",
    "check_task",
    "decode_public_key",
    "new_task",
    "sign_task",
    "verify_task",
]

TASK_DOMAIN = b"p2pnet-task-v1\n"
"""What every task signature covers before the task's canonical bytes."""

ANY_TARGET = "*"
"""The target of a task meant for every node."""

CLOCK_SKEW = 60.0
"""How many seconds before its C{issued} time a task is still accepted (clocks differ)."""

MAX_TASK_LIFETIME = 86400.0
"""The longest C{expires - issued} accepted, so that a replay cache entry is not kept forever."""

MAX_DATA_ENTRIES = 32
"""The most C{data} entries a task may carry."""

MAX_DATA_VALUE = 64 * 1024
"""The longest C{data} value accepted, in characters (a peer list of 100 entries fits)."""

_TASK_KEYS = frozenset({"id", "task_type", "data", "target", "issued", "expires"})
_HEX32 = re.compile(r"[0-9a-f]{32}\Z")


def canonical(obj: Mapping[str, Any]) -> bytes:
    """
    Return the canonical bytes of a JSON object: sorted keys, no spaces, ASCII only.

    Both the signer and the verifier compute these bytes from the parsed object, so the
    signature does not depend on how a sender spaced or ordered its JSON.
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


class TaskRejected(ValueError):
    """
    A task the node must not execute.

    @ivar cause: a short word for the counter C{tasks.rejected.<cause>}: C{malformed},
        C{forged} (bad signature), C{stale} (expired), C{future} (issued more than
        L{CLOCK_SKEW} seconds from now), C{replayed}, C{wrong_target}, C{unsupported} (a task
        type the node does not execute), C{full} (the replay cache is full) or
        C{unverifiable} (a .NET authority's PGP-signed task).
    @ivar reason: what was wrong, for the log.
    """

    def __init__(self, cause: str, reason: str) -> None:
        super().__init__(f"{cause}: {reason}")
        self.cause = cause
        self.reason = reason


def _is_number(value: object) -> bool:
    return type(value) in (int, float) and math.isfinite(value) and abs(value) < 1e12


def _check_data(instance: object, attribute: attrs.Attribute, value: dict[str, str]) -> None:
    if type(value) is not dict or len(value) > MAX_DATA_ENTRIES:
        raise ValueError(f"data must be an object of at most {MAX_DATA_ENTRIES} entries")
    for key, item in value.items():
        if type(key) is not str or type(item) is not str:
            raise ValueError("data must map strings to strings")
        if not key or len(key) > 64 or len(item) > MAX_DATA_VALUE:
            raise ValueError(f"data entry {key[:64]!r} is empty or too long")


def _check_window(instance: AuthorityTask, attribute: attrs.Attribute, value: float) -> None:
    if not _is_number(value):
        raise ValueError("expires must be a number of seconds")
    if not _is_number(instance.issued):
        raise ValueError("issued must be a number of seconds")
    if not 0 < value - instance.issued <= MAX_TASK_LIFETIME:
        raise ValueError(f"expires must follow issued by 0 to {MAX_TASK_LIFETIME:.0f} seconds")


def _check_id(instance: object, attribute: attrs.Attribute, value: str) -> None:
    if type(value) is not str or not _HEX32.match(value):
        raise ValueError("id must be 32 lowercase hex characters")


def _check_target(instance: object, attribute: attrs.Attribute, value: str) -> None:
    if value != ANY_TARGET and not is_key_identifier(value):
        raise ValueError('target must be "*" or a node identifier')


def _task_type(value: object) -> TaskType:
    if type(value) is TaskType:
        return value
    if type(value) is not int:
        raise ValueError(f"task_type must be an integer, not {type(value).__name__}")
    return TaskType(value)


@attrs.frozen
class AuthorityTask:
    """
    One task an authority tells nodes to execute (the C{TASK} of the module docstring).

    @ivar id: 32 lowercase hex characters, unique per task.
    @ivar task_type: what to do.
    @ivar data: the arguments (C{Identifier}, C{IP}, C{Peers}...).
    @ivar target: the identifier of the one node meant, or L{ANY_TARGET}.
    @ivar issued: when the authority issued it, in unix seconds.
    @ivar expires: when it stops being valid, in unix seconds.
    """

    id: str = attrs.field(validator=_check_id)
    task_type: TaskType = attrs.field(converter=_task_type)
    data: dict[str, str] = attrs.field(validator=_check_data)
    target: str = attrs.field(validator=_check_target)
    issued: float = attrs.field()
    expires: float = attrs.field(validator=_check_window)

    def to_json(self) -> dict[str, Any]:
        """Return the C{TASK} JSON object."""
        return {
            "id": self.id,
            "task_type": int(self.task_type),
            "data": dict(self.data),
            "target": self.target,
            "issued": self.issued,
            "expires": self.expires,
        }

    @classmethod
    def from_json(cls, obj: object) -> AuthorityTask:
        """
        Read a C{TASK} JSON object, checking every field's exact type.

        @raise TaskRejected: with cause C{malformed}.
        """
        if type(obj) is not dict:
            raise TaskRejected("malformed", f"a task is an object, not {type(obj).__name__}")
        if obj.keys() != _TASK_KEYS:
            raise TaskRejected("malformed", f"a task has exactly the fields {sorted(_TASK_KEYS)}")
        try:
            return cls(**obj)
        except (TypeError, ValueError) as e:
            raise TaskRejected("malformed", str(e)) from None


def new_task(
    task_type: TaskType | int,
    data: Mapping[str, str],
    *,
    now: float,
    ttl: float = 3600.0,
    target: str = ANY_TARGET,
    task_id: str | None = None,
) -> AuthorityTask:
    """
    Make a task issued at C{now}, valid for C{ttl} seconds, with a fresh random id.

    @raise ValueError: if an argument is out of range (see L{AuthorityTask}).
    """
    return AuthorityTask(
        id=secrets.token_hex(16) if task_id is None else task_id,
        task_type=TaskType(task_type),
        data=dict(data),
        target=target,
        issued=float(now),
        expires=float(now) + ttl,
    )


def sign_task(task: AuthorityTask, key: Ed25519PrivateKey) -> dict[str, Any]:
    """Return the signed task C{{"task": TASK, "signature": base64}} for C{task}."""
    body = task.to_json()
    signature = key.sign(TASK_DOMAIN + canonical(body))
    return {"task": body, "signature": base64.b64encode(signature).decode("ascii")}


def decode_public_key(text: str | bytes) -> Ed25519PublicKey:
    """
    Read an Ed25519 public key from the standard base64 of its 32 raw bytes.

    @raise ValueError: if C{text} is not that.
    """
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a public key is the base64 of 32 bytes") from None
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key has 32 bytes, not {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def verify_task(signed: object, authority: Ed25519PublicKey) -> AuthorityTask:
    """
    Check a signed task's shape and signature.

    @param signed: the parsed JSON C{{"task": ..., "signature": ...}}, as received.
    @param authority: the authority's public key.
    @return: the task, whose signature verifies.
    @raise TaskRejected: cause C{malformed} or C{forged}.
    """
    if type(signed) is not dict or signed.keys() != {"task", "signature"}:
        raise TaskRejected("malformed", 'a signed task is {"task": ..., "signature": ...}')
    signature_text = signed["signature"]
    if type(signature_text) is not str or len(signature_text) != 88:
        raise TaskRejected("malformed", "the signature is the base64 of 64 bytes")
    try:
        signature = base64.b64decode(signature_text, validate=True)
    except (binascii.Error, ValueError):
        raise TaskRejected("malformed", "the signature is not base64") from None
    task = AuthorityTask.from_json(signed["task"])
    try:
        authority.verify(signature, TASK_DOMAIN + canonical(task.to_json()))
    except InvalidSignature:
        raise TaskRejected("forged", f"task {task.id} is not signed by the authority") from None
    return task


def check_task(task: AuthorityTask, *, now: float, identifier: str, replay: ReplayCache) -> None:
    """
    Check that a verified task may run now on the node C{identifier}, and remember its id.

    The id is remembered (until the task expires) only when every check passes, so a task
    refused as early can run once its time comes.

    @raise TaskRejected: cause C{stale}, C{future}, C{wrong_target}, C{replayed} or C{full}.
    """
    if now > task.expires:
        raise TaskRejected("stale", f"task {task.id} expired {now - task.expires:.0f} s ago")
    if task.issued - CLOCK_SKEW > now:
        raise TaskRejected("future", f"task {task.id} is issued {task.issued - now:.0f} s ahead")
    if task.target != ANY_TARGET and task.target != identifier:
        raise TaskRejected("wrong_target", f"task {task.id} is for {task.target}")
    if replay.seen(task.id, now):
        raise TaskRejected("replayed", f"task {task.id} was executed before")
    if not replay.add(task.id, task.expires, now):
        raise TaskRejected("full", f"too many unexpired tasks remembered to take {task.id}")


class ReplayCache:
    """
    A bounded set of keys (task ids, request nonces), each remembered until its expiry time.

    When full of unexpired keys it refuses new ones rather than forget one: forgetting would let
    that key be replayed.  Only keys of authenticated messages should be added.

    @ivar max_entries: the most keys held at once.
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._expiry)

    def _purge(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] < now:
            expires, key = heapq.heappop(heap)
            if self._expiry.get(key) == expires:
                del self._expiry[key]

    def seen(self, key: str, now: float) -> bool:
        """Whether C{key} is remembered and has not expired at C{now}."""
        expires = self._expiry.get(key)
        return expires is not None and expires >= now

    def add(self, key: str, expires: float, now: float) -> bool:
        """
        Remember C{key} until C{expires}.

        @return: C{False}, remembering nothing, if the cache is full of unexpired keys.
        """
        self._purge(now)
        if key not in self._expiry and len(self._expiry) >= self.max_entries:
            return False
        self._expiry[key] = expires
        heapq.heappush(self._heap, (expires, key))
        return True
