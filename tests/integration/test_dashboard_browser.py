"""
The node dashboard in a real headless Chromium (L{tests.browser}), against two real
C{twistd -n p2pnet} nodes on loopback: log in with the token, see the peer, read a hostile
message as text, send a message, block the peer and unblock it (or see why this node cannot),
and keep a screenshot.

This test is synchronous (Selenium blocks): the nodes are child processes, not on this
process's reactor, and their output goes to files so that nothing waits on a pipe.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from p2pnet_tx.ctl import escape
from tests.browser import Browser, start_twistd, stop_process, wait_until

from .support import free_port

HOSTILE = ('<img src=x id=injected onerror="document.title=\'pwned\'"> \u202eevil <b>bold</b>'
           '\nforged line \x1b[31m\\ \U0001f600')
"""A message that would run script, or bold text, if the page ever parsed it as HTML, and that
would reverse or break its line if its controls were not escaped."""

SHOWN = escape(HOSTILE)
"""How the page shows it: as text, escaped exactly as p2pnet-ctl escapes it."""


class Node:
    """A C{twistd -n p2pnet} child process, and its control API with its token."""

    def __init__(self, directory: Path, *options: str) -> None:
        self.directory = directory
        self.port = free_port()
        self.log = directory.with_suffix(".log")
        self.process = start_twistd(
            self.log, "p2pnet", "--listen", f"tcp:{self.port}:interface=127.0.0.1",
            "--control", f"tcp:{free_port()}:interface=127.0.0.1",
            "--data-dir", str(directory), *options)
        self.url = ""
        self.token = ""

    def ready(self) -> None:
        """Wait until the node listens and answers its control API."""
        url_file, token_file = self.directory / "control.url", self.directory / "control.token"
        self.url = wait_until(lambda: self.process.poll() is None and url_file.exists()
                              and url_file.read_text().strip(), what=f"{self.log} listening")
        self.token = token_file.read_text().strip()
        wait_until(lambda: self.call("GET", "/api/status"), what="the control API")

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            return {"status": error.code, **json.loads(error.read() or b"{}")}

    def stop(self) -> str:
        """Stop the node (SIGTERM, then SIGKILL after 10 s); return its log."""
        return stop_process(self.process, self.log)


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[tuple[Node, Node]]:
    """Node A, and node B that keeps A connected; both stopped afterwards."""
    a = Node(tmp_path / "a", "--name", "alice")
    b = Node(tmp_path / "b", "--name", "bob", "--peer", f"127.0.0.1:{a.port}")
    try:
        a.ready()
        b.ready()
        yield a, b
    finally:
        logs = [node.stop() for node in (a, b)]
        for log in logs:
            assert "Traceback" not in log, log


def peer_row(browser: Browser, identifier: str) -> Any:
    from selenium.webdriver.common.by import By

    return browser.driver.find_element(
        By.CSS_SELECTOR, f'#peer-rows tr[data-identifier="{identifier}"]')


def text_of(browser: Browser, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    return browser.driver.find_element(By.ID, element_id).text


def test_dashboard_in_chromium(browser: Browser, nodes: tuple[Node, Node]) -> None:
    """
    A user logs in to node A's dashboard with the token, sees peer B (trusted, its RTT, when
    it was last seen), reads B's hostile message as plain text, sends a message that B
    receives, blocks B, and unblocks it (or is told this node has no unblock API).
    """
    from selenium.webdriver.common.by import By

    a, b = nodes
    driver = browser.driver
    b_id = b.call("GET", "/api/status")["identifier"]
    wait_until(lambda: a.call("GET", "/api/status")["counts"]["trusted"] == 1, what="A trusts B")
    wait_until(lambda: b.call("GET", "/api/status")["counts"]["trusted"] == 1, what="B trusts A")
    assert b.call("POST", "/api/messages", {"message": HOSTILE}) == {"sent": 1}

    browser.log_in(a.url + "/", a.token, lambda name: name.startswith("p2pnet_session_"))

    # The status and the peer.
    browser.wait(lambda d: b_id in text_of(browser, "status-list") or
                 a.call("GET", "/api/status")["identifier"] in text_of(browser, "status-list"),
                 message="status")
    row = browser.wait(lambda d: peer_row(browser, b_id), message="peer B in the table")
    cells = [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
    assert cells[0].startswith("bob (") and b_id in cells[0], cells
    assert cells[2:4] == ["trusted", "inbound"], cells
    assert cells[4].endswith(" ms") or cells[4].endswith(" s"), f"an RTT is shown: {cells}"
    assert cells[5] == "just now" or cells[5].endswith(" s ago"), cells

    # The hostile message, as text.
    item = browser.wait(lambda d: [li for li in d.find_elements(By.CSS_SELECTOR, "#message-list li")
                                   if SHOWN in li.text], message="B's message")[0]
    assert item.find_element(By.CLASS_NAME, "text").text == SHOWN
    assert driver.find_elements(By.ID, "injected") == []
    assert driver.find_elements(By.CSS_SELECTOR, "#message-list b") == []
    assert driver.title == "p2pnet node"

    # Sending.
    driver.find_element(By.ID, "send-text").send_keys("hello from the dashboard\n")
    browser.wait(lambda d: text_of(browser, "notice") == "Sent to 1 peer(s).", message="sent")
    wait_until(lambda: any(m["message"] == "hello from the dashboard"
                           for m in b.call("GET", "/api/messages")["messages"]),
               what="B received the message")
    browser.screenshot("dashboard-peer-and-messages")

    # Blocking B from its row.
    browser.wait(lambda d: peer_row(browser, b_id).find_element(By.TAG_NAME, "button").click()
                 or True, message="block button")
    browser.wait(lambda d: text_of(browser, "notice").startswith(f"Blocked {b_id}"),
                 message="blocked")
    browser.wait(lambda d: not d.find_elements(By.CSS_SELECTOR, "#peer-rows tr"),
                 message="B gone from the table")
    assert a.call("GET", "/api/status")["counts"]["trusted"] == 0

    # Unblocking, where this node can; otherwise the page says why not.
    if a.call("GET", "/api/blocks").get("status") == 404:
        note = browser.wait(lambda d: "404" in text_of(browser, "blocks-note")
                            and text_of(browser, "blocks-note"), message="the 404 note")
        assert "cannot list its blocks" in note
    else:
        item = browser.wait(
            lambda d: d.find_element(By.CSS_SELECTOR, f'#block-list li[data-value="{b_id}"]'),
            message="B in the block list")
        browser.wait(lambda d: d.find_element(
            By.CSS_SELECTOR, f'#block-list li[data-value="{b_id}"] button').click() or True)
        browser.wait(lambda d: text_of(browser, "notice").startswith(f"Unblocked {b_id}"),
                     message="unblocked")
    driver.set_window_size(1280, 1500)
    browser.screenshot("dashboard-after-block")
    errors = [e for e in browser.console_errors()
              if "/api/blocks" not in e and "/api/transfers" not in e and "/session" not in e
              and "401" not in e]
    assert errors == [], errors


def test_browser_tests_skip_without_chromium(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    """Where Chromium is not installed, a browser test is skipped with a reason that says
    what to install, instead of failing."""
    import tests.browser as harness

    monkeypatch.setattr(harness, "CHROMIUM", str(tmp_path / "no-chromium"))
    reason = harness.missing_browser()
    assert reason is not None and "apt-get install" in reason and "chromium" in reason
    with pytest.raises(pytest.skip.Exception, match="not installed"), \
            harness.open_browser(tmp_path):
        raise AssertionError("no browser should have started")
