"""
Tests for L{p2pnet_tx.ctl_files} and L{p2pnet_tx.progress}: C{p2pnet-ctl send-file},
C{transfers}, C{cancel} and C{events}, against a real control API in memory over a fake of
the node's file transfers (L{tests.files_fakes}), as tests/test_ctl.py does.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
from typing import Any

from treq.testing import StubTreq
from twisted.internet.defer import ensureDeferred, fail
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.control import ControlAPI, MessageLog
from p2pnet_tx.control_events import EventRoutes
from p2pnet_tx.control_files import FileRoutes
from p2pnet_tx.ctl import CtlError, _request_for, escape, parser, run
from p2pnet_tx.ctl_files import PROGRESS_INTERVAL, WATCH_WAIT, follow_events
from p2pnet_tx.datadir import NodeDataDir
from p2pnet_tx.event_log import EventLog
from p2pnet_tx.files.transfer import FINISHED_STATES
from p2pnet_tx.network import PeerNetwork
from p2pnet_tx.progress import FINISHED, TransferProgressView, duration, size
from p2pnet_tx.trust import always_trust
from tests.ctl_fakes import ScriptedClient
from tests.files_fakes import FakeFileTransfers


class _Output(io.StringIO):
    """Standard output for a test: not a terminal."""


class _Terminal(io.StringIO):
    """Standard output for a test: a terminal."""

    def isatty(self) -> bool:
        return True


class _RecordingHTTP:
    """treq's request API over a StubTreq, keeping the path of every request."""

    def __init__(self, stub: StubTreq) -> None:
        self.stub = stub
        self.paths: list[str] = []

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        self.paths.append(url.split("127.0.0.1", 1)[1])
        kwargs.pop("timeout", None)
        kwargs.pop("reactor", None)
        return self.stub.request(method, url, **kwargs)


class _Refusing:
    """treq's request API where no node listens."""

    def request(self, *args: Any, **kwargs: Any) -> Any:
        return fail(ConnectionRefusedError("Connection refused"))


def request(*argv: str) -> tuple[str, str, Any]:
    return _request_for(parser().parse_args(list(argv)))


class RequestTests(SynchronousTestCase):
    """Each command maps to one control API request; bad arguments are told at once."""

    def test_commands(self) -> None:
        """send-file sends the absolute path and the --to list; the others map as documented."""
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"data")
        self.assertEqual(request("send-file", path),
                         ("POST", "/api/files", {"path": os.path.abspath(path), "to": None}))
        self.assertEqual(request("send-file", path, "--to", "a", "--to", "b")[2]["to"],
                         ["a", "b"])
        self.assertEqual(request("transfers"), ("GET", "/api/transfers", None))
        self.assertEqual(request("cancel", "0A1b"), ("DELETE", "/api/transfers/0a1b", None))
        self.assertEqual(request("events", "--since", "3"), ("GET", "/api/events?since=3", None))

    def test_bad_files_told_at_once(self) -> None:
        """A missing file, a directory and a device are one-line errors, before any call."""
        directory = self.mktemp()
        os.mkdir(directory)
        for path, why in ((self.mktemp(), "no such file: "), (directory, "is a directory"),
                          ("/dev/null", "not a regular file")):
            error = self.assertRaises(CtlError, request, "send-file", path)
            self.assertIn(why, str(error))
            self.assertNotIn("\n", str(error))

    def test_bad_transfer_ids(self) -> None:
        """cancel with an id that is not hex says so, and makes no request."""
        for bad in ("xyz", "../peers/abc", "", "12 34", "\x1b[2J"):
            error = self.assertRaises(CtlError, request, "cancel", bad)
            self.assertIn("is not a transfer id", str(error))


class CommandTests(SynchronousTestCase):
    """Whole commands against a real control API in memory, over a fake FileTransfers."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        network = PeerNetwork(self.reactor, transport="tcp", identifier="node",
                              trust_protocol=always_trust)
        api = ControlAPI(network, "tok", MessageLog(self.reactor), "tcp:8051")
        self.files = FakeFileTransfers(["peer-a", "peer-b"], clock=self.reactor)
        self.events = EventLog(self.reactor)
        self.routes = FileRoutes(self.files, api, self.reactor, self.events)
        EventRoutes(self.events, api)
        self.stub = StubTreq(api)
        self.http = _RecordingHTTP(self.stub)
        data_dir = NodeDataDir(self.mktemp()).ensure()
        (data_dir.path / "control.token").write_text("tok")
        self.data_dir = str(data_dir.path)
        self.path = os.path.abspath(self.mktemp())
        with open(self.path, "wb") as f:
            f.write(b"x" * 2000)

    def start(self, *argv: str, out: Any = None, http: Any = None) -> tuple[Any, Any]:
        """Start p2pnet-ctl; return its Deferred and its output."""
        args = parser().parse_args(["--data-dir", self.data_dir, "--url", "http://127.0.0.1",
                                    *argv])
        out = _Output() if out is None else out
        d = ensureDeferred(run(self.reactor, args, out, self.http if http is None else http))
        self.stub.flush()
        return d, out

    def ctl(self, *argv: str) -> tuple[str, Any]:
        """Run p2pnet-ctl to its end; return its output and its result."""
        d, out = self.start(*argv)
        results: list[Any] = []
        d.addBoth(results.append)
        return out.getvalue(), results[0] if results else None

    def step(self, seconds: float = PROGRESS_INTERVAL) -> None:
        """Let the node answer, and time pass."""
        self.stub.flush()
        self.reactor.advance(seconds)
        self.stub.flush()

    # -- send-file --------------------------------------------------------------------------------

    def test_send_file_follows_one_transfer(self) -> None:
        """send-file offers the file, then long-polls its transfer (after= the bytes it has
        seen, state= the state), at most every PROGRESS_INTERVAL, until it is done."""
        d, out = self.start("send-file", self.path, "--to", "peer-a")
        [transfer] = self.files.transfers()
        self.assertEqual(self.files.sent, [(self.path, ["peer-a"])])
        self.assertEqual(self.http.paths[-1],
                         f"/api/transfers/{transfer.id}?wait={WATCH_WAIT}&after=0&state=offered")
        self.assertNoResult(d)
        transfer.move(state="sending", done=500, rate=1000.0)
        self.stub.flush()
        requests = len(self.http.paths)
        self.reactor.advance(PROGRESS_INTERVAL / 2)
        self.stub.flush()
        self.assertEqual(len(self.http.paths), requests)  # paced: no request yet
        self.reactor.advance(PROGRESS_INTERVAL / 2)
        self.stub.flush()
        self.assertEqual(self.http.paths[-1],
                         f"/api/transfers/{transfer.id}?wait={WATCH_WAIT}&after=500"
                         f"&state=sending")
        self.files.finish(transfer)
        self.step()
        self.assertEqual(self.successResultOf(d), 0)
        lines = out.getvalue().splitlines()
        self.assertEqual(lines[-1], f"{transfer.name} to peer-a: done (2.0 KiB)")
        self.assertIn(f"{transfer.name} to peer-a:  25%  500 B of 2.0 KiB  1000 B/s  ETA 0:02",
                      lines)
        self.assertNotIn("\r", out.getvalue())
        self.assertEqual(self.routes.waiting, 0)

    def test_send_file_bar_on_a_terminal(self) -> None:
        """On a terminal the bar is redrawn in place with rate and ETA, its line is erased
        at the end, and the result is a line of its own."""
        self.patch(shutil, "get_terminal_size", lambda: os.terminal_size((100, 24)))
        d, out = self.start("send-file", self.path, "--to", "peer-a", out=_Terminal())
        [transfer] = self.files.transfers()
        transfer.move(state="sending", done=1000, rate=100.0)
        self.step()
        self.files.finish(transfer)
        self.step()
        self.assertEqual(self.successResultOf(d), 0)
        text = out.getvalue()
        self.assertIn("[############------------]  50%  1000 B of 2.0 KiB  100 B/s  ETA 0:10",
                      text)
        self.assertIn("\r", text)
        self.assertTrue(text.endswith(f"\r\x1b[K{transfer.name} to peer-a: done (2.0 KiB)\n"),
                        repr(text[-120:]))

    def test_send_file_to_several_peers(self) -> None:
        """With several recipients send-file long-polls the list (with its version) and
        fails, saying which, when one of them refuses."""
        d, out = self.start("send-file", self.path)
        a, b = sorted(self.files.transfers(), key=lambda t: t.peer)
        self.assertTrue(self.http.paths[-1].startswith(f"/api/transfers?wait={WATCH_WAIT}"))
        self.step()
        self.assertIn("&version=", self.http.paths[-1])
        self.files.finish(b, "refused", reason="over the size limit")
        self.step()
        self.assertNoResult(d)
        a.move(state="sending", done=1000, rate=10.0)
        self.step()
        self.files.finish(a)
        self.step()
        failure = self.failureResultOf(d, CtlError)
        self.assertEqual(str(failure.value),
                         f"1 of 2 transfer(s) did not complete: {b.name} to peer-b: refused "
                         f"(over the size limit)")
        self.assertIn(f"{a.name} to peer-a: done (2.0 KiB)", out.getvalue())
        self.assertIn(f"{a.name} to 2 peers:  25%", out.getvalue())

    def test_send_file_json_prints_no_bar(self) -> None:
        """--json draws nothing and prints the transfers, once ended, as JSON."""
        d, out = self.start("send-file", self.path, "--to", "peer-a", "--json",
                            out=_Terminal())
        [transfer] = self.files.transfers()
        transfer.move(state="sending", done=10, rate=5.0)
        self.step()
        self.files.finish(transfer)
        self.step()
        self.assertEqual(self.successResultOf(d), 0)
        answer = json.loads(out.getvalue())
        self.assertEqual([t["state"] for t in answer["transfers"]], ["done"])
        self.assertNotIn("\r", out.getvalue())

    def test_send_file_detach(self) -> None:
        """--detach prints the transfers started and returns at once."""
        output, result = self.ctl("send-file", self.path, "--detach")
        self.assertEqual(result, 0)
        ids = [t.id for t in self.files.transfers()]
        self.assertEqual(sorted(line.split(":")[0] for line in output.splitlines()),
                         sorted(f"transfer {i}" for i in ids))
        output, result = self.ctl("send-file", self.path, "--detach", "--json")
        self.assertEqual(len(json.loads(output)["transfers"]), 2)

    def test_send_file_errors_are_one_line(self) -> None:
        """An unknown peer, no trusted peer, and no node running: one line each, exit 1."""
        _, result = self.ctl("send-file", self.path, "--to", "mallory")
        self.assertEqual(str(result.value), "'mallory' is not a trusted peer")
        self.files.trusted = []
        _, result = self.ctl("send-file", self.path)
        self.assertEqual(str(result.value), "no trusted peer to send to")
        d, _ = self.start("send-file", self.path, http=_Refusing())
        failure = self.failureResultOf(d, CtlError)
        self.assertIn("no node is answering at http://127.0.0.1", str(failure.value))
        self.assertIn("is it running?", str(failure.value))

    def test_interrupted_send_file_says_the_node_goes_on(self) -> None:
        """If the reactor stops (Ctrl-C) while send-file follows, it ends the bar's line and
        says on stderr how to cancel; once it is over, stopping says nothing."""
        err = io.StringIO()
        self.patch(sys, "stderr", err)
        d, out = self.start("send-file", self.path, "--to", "peer-a", out=_Terminal())
        [transfer] = self.files.transfers()
        transfer.move(state="sending", done=5, rate=1.0)
        self.step()
        [(interrupted, args, kwargs)] = self.reactor.triggers["before"]["shutdown"]
        interrupted(*args, **kwargs)
        self.assertTrue(out.getvalue().endswith("\r\x1b[K"))
        self.assertEqual(err.getvalue(),
                         f"p2pnet-ctl: interrupted: the node goes on with the transfer(s); "
                         f"'p2pnet-ctl cancel ID' stops one ({transfer.id})\n")
        self.assertNoResult(d)
        d, out = self.start("send-file", self.path, "--to", "peer-b")
        self.files.finish(self.files.transfers()[0])
        self.step()
        self.successResultOf(d)
        before = out.getvalue()
        callable_, args, kwargs = self.reactor.triggers["before"]["shutdown"][-1]
        callable_(*args, **kwargs)
        self.assertEqual(out.getvalue(), before)
        self.assertEqual(err.getvalue().count("interrupted"), 1)

    # -- transfers, cancel, events ----------------------------------------------------------------

    def test_transfers_text_and_json(self) -> None:
        """transfers prints one line each, newest first, peer text escaped; --json the API's
        answer."""
        got = self.files.add(direction="receive", peer="peer-\x1b[2Jb", name="in\u202e.txt",
                             size=4096, state="receiving", done=1024, rate=2048.0)
        self.files.finish(got)
        got.path = "/data/files/in.txt"
        sending = self.files.add(direction="send", peer="peer-a", name="out.bin", size=10,
                                 state="sending", done=5, rate=1.0)
        output, result = self.ctl("transfers")
        self.assertEqual(result, 0)
        self.assertEqual(output.splitlines(), [
            f"{sending.id}  send     out.bin  to peer-a  50% of 10 B  1 B/s  sending",
            (f"{got.id}  receive  in\\u202e.txt  from peer-\\x1b[2Jb  100% of 4.0 KiB  done  "
             f"-> /data/files/in.txt"),
        ])
        output, _ = self.ctl("transfers", "--json")
        self.assertEqual(len(json.loads(output)["transfers"]), 2)
        self.files._transfers.clear()
        self.assertEqual(self.ctl("transfers")[0], "(no transfers)\n")

    def test_cancel(self) -> None:
        """cancel says what it cancelled, or that the transfer had ended; an unknown id is a
        one-line error."""
        transfer = self.files.add(direction="send", peer="peer-a", name="a.bin", size=3)
        output, result = self.ctl("cancel", transfer.id)
        self.assertEqual((output, result), (
            f"cancelled {transfer.id}: a.bin to peer-a: cancelled (cancelled by the user)\n", 0))
        output, _ = self.ctl("cancel", transfer.id)
        self.assertTrue(output.startswith(f"{transfer.id} had already ended:"))
        _, result = self.ctl("cancel", "0123456789ab")
        self.assertIsInstance(result.value, CtlError)
        self.assertIn("no transfer 0123456789ab", str(result.value))

    def test_events(self) -> None:
        """events prints one line per event; --json the API's answer."""
        self.assertEqual(self.ctl("events")[0], "(no events)\n")
        got = self.files.add(direction="receive", peer="peer-b", name="in.bin", size=2048)
        got.path = "/data/files/in.bin"
        self.files.finish(got)
        bad = self.files.add(direction="receive", peer="peer-c", name="big.iso", size=10)
        self.files.finish(bad, "refused", reason="over the quota\n[9] forged")
        output, _ = self.ctl("events")
        self.assertEqual(output.splitlines(), [
            (f"[1] file received: in.bin from peer-b (2.0 KiB, transfer {got.id}) "
             f"-> /data/files/in.bin"),
            (f"[2] file refused: big.iso from peer-c (10 B, transfer {bad.id}): over the "
             f"quota\\x0a[9] forged"),
        ])
        output, _ = self.ctl("events", "--since", "1", "--json")
        self.assertEqual([e["seq"] for e in json.loads(output)["events"]], [2])

    def test_events_follow(self) -> None:
        """events --follow long-polls after the last event printed, until the node goes."""
        client = ScriptedClient([{"events": [{"seq": 1, "kind": "file.sent"}]}, {"events": []},
                                 {"events": [{"seq": 2, "kind": "file.failed"}]}])
        out = _Output()
        d = ensureDeferred(follow_events(client, 0, False, out, escape))
        self.failureResultOf(d, CtlError)
        self.assertEqual(client.paths, [f"/api/events?since={n}&wait={WATCH_WAIT}" for n in (0, 1, 1, 2)])
        self.assertEqual(out.getvalue(), "[1] file sent\n[2] file failed\n")


class ProgressViewTests(SynchronousTestCase):
    """The progress display alone."""

    def test_finished_states_are_the_nodes(self) -> None:
        """The states the display takes as ended are those the node never leaves."""
        self.assertEqual(FINISHED, FINISHED_STATES)

    def transfer(self, **fields: Any) -> dict[str, Any]:
        return {"id": "t1", "direction": "send", "peer": "peer-a", "name": "f.bin",
                "size": 1000, "done": 0, "state": "sending", "rate": 0.0, **fields}

    def test_sizes_and_durations(self) -> None:
        """Sizes in B, KiB, MiB...; durations as m:ss or h:mm:ss; '?' when unknown."""
        self.assertEqual([size(v) for v in (0, 1023, 1024, 1536 * 1024, 3 * 1024 ** 4, -1,
                                            "x", None, True)],
                         ["0 B", "1023 B", "1.0 KiB", "1.5 MiB", "3.0 TiB", "?", "?", "?", "?"])
        self.assertEqual([duration(v) for v in (7, 750, 7384, -1, None, float("inf"))],
                         ["0:07", "12:30", "2:03:04", "?", "?", "?"])

    def test_plain_lines_are_few(self) -> None:
        """Off a terminal, a thousand updates of one transfer make a line per tenth and one
        per state, not a thousand."""
        out = io.StringIO()
        view = TransferProgressView(out, escape, tty=False)
        for done in range(1001):
            view.show([self.transfer(done=done, rate=100.0)])
        view.show([self.transfer(done=1000, state="done")])
        view.close()
        lines = out.getvalue().splitlines()
        self.assertLessEqual(len(lines), 13)
        self.assertEqual(lines[0], "f.bin to peer-a: sending")
        self.assertEqual(lines[1], "f.bin to peer-a:   0%  0 B of 1000 B  100 B/s  ETA 0:10")
        self.assertEqual(lines[-1], "f.bin to peer-a: done (1000 B)")

    def test_unknown_rate_and_waiting_states(self) -> None:
        """With no rate the ETA is '?'; a state other than sending is shown."""
        out = io.StringIO()
        view = TransferProgressView(out, escape, tty=True, width=100)
        view.show([self.transfer(state="paused", reason="peer gone", done=500)])
        text = out.getvalue()
        self.assertIn("50%  500 B of 1000 B  0 B/s  ETA ?  paused", text)
        self.assertLessEqual(len(text.split("\r")[-1].replace("\x1b[K", "")), 99)
        for state in ("sending", "paused"):
            out = io.StringIO()
            TransferProgressView(out, escape, tty=True, width=80).show(
                [self.transfer(name="n" * 200, peer="p" * 64, state=state, done=10 ** 9,
                               size=10 ** 10, rate=10 ** 6)])
            line = out.getvalue().split("\r")[-1].replace("\x1b[K", "")
            self.assertLessEqual(len(line), 79, line)
            self.assertIn("ETA 2:30:00", line)

    def test_bar_width_steady(self) -> None:
        """The bar keeps its width while the figures beside it grow and shrink."""
        out = io.StringIO()
        view = TransferProgressView(out, escape, tty=True, width=80)
        for done, rate in ((0, 0.0), (5 * 2 ** 20, 3.5 * 2 ** 20), (99 * 2 ** 20, 120.0)):
            view.show([self.transfer(size=100 * 2 ** 20, done=done, rate=rate)])
        frames = [frame for frame in out.getvalue().split("\r") if "[" in frame]
        widths = {len(frame[frame.index("["):frame.index("]")]) for frame in frames}
        self.assertEqual(len(frames), 3)
        self.assertEqual(len(widths), 1, frames)

    def test_peer_text_escaped(self) -> None:
        """A peer's identifier or a file name cannot drive the terminal."""
        out = io.StringIO()
        view = TransferProgressView(out, escape, tty=True)
        view.show([self.transfer(peer="\x1b]0;owned\x07", name="a\rb")])
        view.show([self.transfer(peer="\x1b]0;owned\x07", name="a\rb", state="failed")])
        text = out.getvalue()
        for char in ("\x07", "\x1b]"):
            self.assertNotIn(char, text)
        self.assertIn("a\\x0db", text)
