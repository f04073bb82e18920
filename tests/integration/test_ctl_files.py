"""
C{p2pnet-ctl send-file}, C{transfers} and C{events} as a user runs them: the console script in
a process of its own, against two real C{twistd -n p2pnet} nodes on loopback (issue 12).
"""

from __future__ import annotations

import json
import sys

import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue

from p2pnet_tx.datadir import NodeDataDir

from .support import free_port
from .test_files import MiB, sha256_of, stop, write_random_file
from .test_twistd import NodeProcess, start_node


async def ctl(data_dir: str, *argv: str) -> tuple[str, str, int]:
    """Run p2pnet-ctl against the node of C{data_dir}; its output, errors and status."""
    out, err, code = await getProcessOutputAndValue(
        sys.executable, ["-m", "p2pnet_tx.ctl", "--data-dir", data_dir, *argv],
        reactor=reactor)
    return out.decode(), err.decode(), code


async def until_trusted(data_dir: str, tries: int = 150) -> None:
    """Wait (bounded: 150 tries 0.2 s apart) until the node of C{data_dir} trusts one peer.
    Its requests use no persistent connection: none is left in a pool after the test."""
    last: object = None
    for _ in range(tries):
        data = NodeDataDir(data_dir, reactor)
        url, token = data.control_url(), data.read_control_token()
        if url and token:
            try:
                response = await treq.get(url.rstrip("/") + "/api/status", persistent=False,
                                          headers={"Authorization": ["Bearer " + token]})
                last = await response.json()
                if last["counts"]["trusted"] == 1:
                    return
            except Exception as e:  # noqa: BLE001 - not up yet: try again
                last = e
        await deferLater(reactor, 0.2, lambda: None)
    raise AssertionError(f"{data_dir}: never trusted a peer; last: {last}")


async def two_nodes(tmp_path) -> tuple[NodeProcess, NodeProcess]:
    """Node A dials node B; both trust each other."""
    a_dir, b_dir, b_port = str(tmp_path / "a"), str(tmp_path / "b"), free_port()
    b = start_node(b_dir, b_port, free_port())
    a = start_node(a_dir, free_port(), free_port(), "--peer", f"127.0.0.1:{b_port}")
    await until_trusted(a_dir)
    await until_trusted(b_dir)
    return a, b


@pytest_twisted.ensureDeferred
async def test_send_file_with_ctl(tmp_path) -> None:
    """send-file (its output a pipe: plain lines, no bar) follows the transfer to the end and
    exits 0; the file arrives with the same SHA-256; the receiver's events and transfers say
    so; an unknown peer is a one-line error with status 1."""
    source = str(tmp_path / "report.bin")
    expected = write_random_file(source, 8 * MiB)
    a, b = await two_nodes(tmp_path)
    a_dir, b_dir = str(tmp_path / "a"), str(tmp_path / "b")
    try:
        out, err, code = await ctl(a_dir, "send-file", source)
        assert (code, err) == (0, ""), (out, err)
        assert "\r" not in out and "\x1b" not in out
        lines = out.splitlines()
        assert lines[-1].startswith("report.bin to ") and lines[-1].endswith(": done (8.0 MiB)")
        out, err, code = await ctl(b_dir, "--json", "transfers")
        [received] = json.loads(out)["transfers"]
        assert (received["direction"], received["state"]) == ("receive", "done"), received
        assert sha256_of(received["path"]) == expected
        out, _, _ = await ctl(b_dir, "--json", "events")
        kinds = [event["kind"] for event in json.loads(out)["events"]]
        assert kinds[-1] == "file.received", kinds

        out, err, code = await ctl(a_dir, "send-file", source, "--to", "nobody")
        assert code == 1 and out == "", (out, err)
        assert err.count("\n") == 1 and "nobody" in err and "Traceback" not in err, err
    finally:
        await stop(a, b)
