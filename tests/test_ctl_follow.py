# -*- test-case-name: tests.test_ctl_follow -*-
"""Tests for L{p2pnet_tx.ctl_follow}: C{--since}/C{--follow} and the long poll of a node's log."""

from __future__ import annotations

import argparse
import io
import json

from twisted.internet.defer import ensureDeferred
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.ctl import CtlError
from p2pnet_tx.ctl_follow import FOLLOW_WAIT, add_follow_options, follow
from tests.ctl_fakes import ScriptedClient


class FollowOptionsTests(SynchronousTestCase):
    def test_since_and_follow(self) -> None:
        """C{--since N} is an integer (0 by default); C{--follow} and C{-f} are flags."""
        command = argparse.ArgumentParser()
        add_follow_options(command, "keep printing")
        self.assertEqual(vars(command.parse_args([])), {"since": 0, "follow": False})
        self.assertEqual(vars(command.parse_args(["--since", "7", "-f"])),
                         {"since": 7, "follow": True})
        self.assertIn("keep printing", command.format_help())


class FollowTests(SynchronousTestCase):
    def test_asks_after_the_last_entry_printed(self) -> None:
        """Each poll asks for the entries after the highest number printed so far; an entry
        whose number is not an integer is printed but moves nothing."""
        client = ScriptedClient([{"things": [{"seq": 3}, {"seq": "9"}]}, {"things": []},
                                 {"things": [{"seq": 5}]}])
        out = io.StringIO()
        d = ensureDeferred(follow(client, "things", 2, False, out, lambda e: f"<{e['seq']}>"))
        self.failureResultOf(d, CtlError)
        self.assertEqual(client.paths, [f"/api/things?since={n}&wait={FOLLOW_WAIT}"
                                        for n in (2, 3, 3, 5)])
        self.assertEqual(out.getvalue(), "<3>\n<9>\n<5>\n")

    def test_json_lines_and_a_missing_key(self) -> None:
        """With C{as_json} each entry is one line of JSON; an answer without the log's key
        prints nothing."""
        client = ScriptedClient([{"things": [{"seq": 1, "b": "\x1b", "a": 1}]}, {}])
        out = io.StringIO()
        d = ensureDeferred(follow(client, "things", 0, True, out, lambda e: "not used"))
        self.failureResultOf(d, CtlError)
        [line] = out.getvalue().splitlines()
        self.assertEqual(line, '{"a": 1, "b": "\\u001b", "seq": 1}')
        self.assertEqual(json.loads(line)["b"], "\x1b")
