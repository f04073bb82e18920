"""
Tests for L{p2pnet_tx.tasks}: the signed task record, its signature and the checks a node makes
before executing one.
"""

from __future__ import annotations

import base64
import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.identity import identifier_for_public_key, public_key_bytes
from p2pnet_tx.packets import TaskType as PacketsTaskType
from p2pnet_tx.tasks import (
    ANY_TARGET,
    TASK_DOMAIN,
    AuthorityTask,
    ReplayCache,
    TaskRejected,
    TaskType,
    canonical,
    check_task,
    decode_public_key,
    new_task,
    sign_task,
    verify_task,
)

NOW = 1_700_000_000.0
AUTHORITY = Ed25519PrivateKey.generate()
NODE = identifier_for_public_key(Ed25519PrivateKey.generate())


def signed() -> dict:
    return sign_task(new_task(TaskType.BLOCK_IP, {"IP": "192.0.2.1"}, now=NOW), AUTHORITY)


class CanonicalTests(SynchronousTestCase):
    """The canonical bytes are the spec's json.dumps form."""

    def test_sorted_compact_ascii(self) -> None:
        """Keys sorted, no spaces, non-ASCII escaped."""
        self.assertEqual(canonical({"b": 1, "a": "é"}), b'{"a":"\\u00e9","b":1}')


class TaskTypeTests(SynchronousTestCase):
    """Task types are numbered as .NET's enumeration."""

    def test_dotnet_numbers(self) -> None:
        """The numbers the spec names; the same enum as the packets'."""
        self.assertIs(TaskType, PacketsTaskType)
        self.assertEqual(TaskType.BLOCK_AND_REMOVE_PEER, 0)
        self.assertEqual(TaskType.BLOCK_IP, 1)
        self.assertEqual(TaskType.PING_PEER, 3)
        self.assertEqual(TaskType.DISCONNECT_PEER, 4)
        self.assertEqual(TaskType.AUTHORIZE_PEER, 5)
        self.assertEqual(TaskType.BOOTSTRAP_INITIALIZATION, 14)
        self.assertEqual(TaskType.HEARTBEAT_RESPONSE, 16)


class SignatureTests(SynchronousTestCase):
    """A signed task verifies against the authority's key and no other."""

    def test_round_trip(self) -> None:
        """sign_task then verify_task returns the same task."""
        task = new_task(TaskType.DISCONNECT_PEER, {"Identifier": NODE}, now=NOW, target=NODE)
        message = json.loads(json.dumps(sign_task(task, AUTHORITY)))
        self.assertEqual(verify_task(message, AUTHORITY.public_key()), task)

    def test_signature_covers_domain(self) -> None:
        """The signature is over TASK_DOMAIN + canonical(TASK), as the spec says."""
        task = new_task(TaskType.PING_PEER, {"Identifier": NODE}, now=NOW)
        message = sign_task(task, AUTHORITY)
        AUTHORITY.public_key().verify(
            base64.b64decode(message["signature"]), TASK_DOMAIN + canonical(message["task"])
        )

    def test_other_key_is_forged(self) -> None:
        """A task signed by another key is refused as forged."""
        task = new_task(TaskType.BLOCK_IP, {"IP": "192.0.2.1"}, now=NOW)
        message = sign_task(task, Ed25519PrivateKey.generate())
        e = self.assertRaises(TaskRejected, verify_task, message, AUTHORITY.public_key())
        self.assertEqual(e.cause, "forged")

    def test_altered_field_is_forged(self) -> None:
        """Changing any field after signing breaks the signature."""
        message = signed()
        for name, value in [("target", NODE), ("data", {"IP": "192.0.2.2"}), ("expires", NOW + 7)]:
            altered = {"task": {**message["task"], name: value}, "signature": message["signature"]}
            e = self.assertRaises(TaskRejected, verify_task, altered, AUTHORITY.public_key())
            self.assertEqual(e.cause, "forged", name)

    def test_malformed(self) -> None:
        """Wrong shapes and types are refused as malformed, never raise anything else."""
        good = signed()
        bad = [
            None, [], "x", {}, {"task": good["task"]},
            {**good, "extra": 1},
            {**good, "signature": "!" * 88},
            {**good, "signature": 5},
            {**good, "task": {**good["task"], "task_type": "1"}},
            {**good, "task": {**good["task"], "task_type": True}},
            {**good, "task": {**good["task"], "task_type": 99}},
            {**good, "task": {**good["task"], "id": "ABC"}},
            {**good, "task": {**good["task"], "data": {"IP": 5}}},
            {**good, "task": {**good["task"], "data": []}},
            {**good, "task": {**good["task"], "target": "someone"}},
            {**good, "task": {**good["task"], "issued": "now"}},
            {**good, "task": {**good["task"], "expires": NOW - 1}},
            {**good, "task": {**good["task"], "expires": NOW + 10**6}},
            {**good, "task": {k: v for k, v in good["task"].items() if k != "target"}},
        ]
        for message in bad:
            e = self.assertRaises(TaskRejected, verify_task, message, AUTHORITY.public_key())
            self.assertEqual(e.cause, "malformed", message)

    @given(st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                    max_size=6),
        max_leaves=20,
    ))
    def test_arbitrary_json_never_crashes(self, value: object) -> None:
        """Any JSON value is refused with TaskRejected, nothing else."""
        for message in (value, {"task": value, "signature": "A" * 86 + "=="}):
            try:
                verify_task(message, AUTHORITY.public_key())
            except TaskRejected as e:
                self.assertIn(e.cause, ("malformed", "forged"))
            else:
                self.fail(f"accepted {message!r}")

    def test_decode_public_key(self) -> None:
        """A base64 raw key decodes; anything else is a ValueError."""
        raw = public_key_bytes(AUTHORITY)
        key = decode_public_key(base64.b64encode(raw).decode())
        self.assertEqual(public_key_bytes(key), raw)
        for text in ("", "abc", base64.b64encode(raw[:31]).decode(), "!" * 44):
            self.assertRaises(ValueError, decode_public_key, text)


class CheckTaskTests(SynchronousTestCase):
    """check_task refuses stale, early, replayed and misdirected tasks."""

    def setUp(self) -> None:
        self.replay = ReplayCache()
        self.task = new_task(TaskType.BLOCK_IP, {"IP": "192.0.2.1"}, now=NOW, ttl=600)

    def cause(self, task: AuthorityTask, now: float, identifier: str = NODE) -> str | None:
        try:
            check_task(task, now=now, identifier=identifier, replay=self.replay)
        except TaskRejected as e:
            return e.cause
        return None

    def test_window(self) -> None:
        """Accepted from issued - 60 s to expires; stale after, future before."""
        self.assertEqual(self.cause(self.task, NOW + 601), "stale")
        self.assertEqual(self.cause(self.task, NOW - 61), "future")
        self.assertIsNone(self.cause(self.task, NOW - 60))

    def test_replayed(self) -> None:
        """The same id runs once; refused as replayed until it expires."""
        self.assertIsNone(self.cause(self.task, NOW))
        self.assertEqual(self.cause(self.task, NOW + 1), "replayed")
        self.assertEqual(self.cause(self.task, NOW + 600), "replayed")

    def test_early_is_not_remembered(self) -> None:
        """A task refused (here: for another node) is not remembered as executed."""
        other = new_task(TaskType.BLOCK_IP, {"IP": "192.0.2.1"}, now=NOW, target=NODE)
        me = identifier_for_public_key(Ed25519PrivateKey.generate())
        self.assertEqual(self.cause(other, NOW, identifier=me), "wrong_target")
        self.assertIsNone(self.cause(other, NOW, identifier=NODE))

    def test_target(self) -> None:
        """A task for one node runs only there; "*" runs everywhere."""
        self.assertEqual(self.task.target, ANY_TARGET)
        self.assertIsNone(self.cause(self.task, NOW, identifier="anything"))


class ReplayCacheTests(SynchronousTestCase):
    """The replay cache is bounded and forgets only what expired."""

    def test_full_refuses(self) -> None:
        """Full of unexpired keys: a new key is refused, none is forgotten."""
        cache = ReplayCache(max_entries=3)
        for key in "abc":
            self.assertTrue(cache.add(key, 100.0, now=0.0))
        self.assertFalse(cache.add("d", 100.0, now=1.0))
        self.assertTrue(all(cache.seen(key, 1.0) for key in "abc"))
        self.assertFalse(cache.seen("d", 1.0))

    def test_expired_make_room(self) -> None:
        """Expired keys are purged when room is needed."""
        cache = ReplayCache(max_entries=2)
        cache.add("a", 10.0, now=0.0)
        cache.add("b", 50.0, now=0.0)
        self.assertTrue(cache.add("c", 60.0, now=11.0))
        self.assertFalse(cache.seen("a", 11.0))
        self.assertEqual(len(cache), 2)

    def test_check_task_full(self) -> None:
        """check_task says "full" when the cache cannot remember the id."""
        cache = ReplayCache(max_entries=1)
        first = new_task(TaskType.BLOCK_IP, {"IP": "192.0.2.1"}, now=NOW)
        second = new_task(TaskType.BLOCK_IP, {"IP": "192.0.2.2"}, now=NOW)
        check_task(first, now=NOW, identifier=NODE, replay=cache)
        e = self.assertRaises(
            TaskRejected, check_task, second, now=NOW, identifier=NODE, replay=cache
        )
        self.assertEqual(e.cause, "full")
