"""
The bootstrap server's dashboard in a real headless Chromium (L{tests.browser}), against a
real C{twistd -n p2pnet-bootstrap} on loopback: log in with the admin token, see a node that
registered (a signed C{/v1} register sent by this test) appear, block it, see it gone from the
peers and shown as blocked, with the action in the audit log, and keep a screenshot (also
copied to C{docs/images/bootstrap-dashboard.png} when that is missing, or with
C{P2PNET_TX_UPDATE_DOCS_IMAGES=1}, so that a test run leaves the checkout as it was).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from p2pnet_tx.bootstrap.v1 import build_register
from p2pnet_tx.identity import identifier_for_public_key
from tests.browser import Browser, start_twistd, stop_process, wait_until

DOCS_IMAGE = Path(__file__).resolve().parents[2] / "docs" / "images" / "bootstrap-dashboard.png"


class Server:
    """A C{twistd -n p2pnet-bootstrap} child process on a free loopback port."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.log = directory.with_suffix(".log")
        self.process = start_twistd(
            self.log, "p2pnet-bootstrap", "--listen", "tcp:0:interface=127.0.0.1",
            "--mode", "authority", "--data-dir", str(directory))
        url_file = directory / "bootstrap.url"
        self.url = wait_until(lambda: self.process.poll() is None and url_file.exists()
                              and url_file.read_text().strip(), what=f"{self.log} listening")
        self.token = (directory / "admin.token").read_text().strip()
        wait_until(lambda: self.get("/v1/authority")["mode"] == "authority", what="loaded")

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.loads(response.read())

    def post(self, path: str, body: Any) -> Any:
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                         method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def stop(self) -> str:
        return stop_process(self.process, self.log)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path / "bootstrap")
    try:
        yield running
    finally:
        log = running.stop()
        assert "Traceback" not in log, log


def test_bootstrap_dashboard_in_chromium(browser: Browser, server: Server) -> None:
    """An operator logs in, sees two registered nodes with their address and last heartbeat,
    blocks one with one click, and sees it leave the peers, appear as blocked, and the block
    in the audit log (with a task queued for the other node: authority mode)."""
    from selenium.webdriver.common.by import By

    driver = browser.driver
    keys = [Ed25519PrivateKey.generate() for _ in range(2)]
    for number, key in enumerate(keys):
        server.post("/v1/register", build_register(key, 7001 + number, f"node-{number}",
                                                   now=time.time()))
    victim = identifier_for_public_key(keys[0])

    browser.log_in(server.url + "/", server.token,
                   lambda name: name == "p2pnet_bootstrap_session")

    row = browser.wait(lambda d: d.find_element(
        By.CSS_SELECTOR, f'#peer-rows tr[data-identifier="{victim}"]'), message="the node")
    cells = [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
    assert cells[0] == f"node-0 ({victim})" and cells[1] == "v1", cells
    assert cells[2] == "127.0.0.1:7001", cells
    assert cells[4] == "just now" or cells[4].endswith(" s ago"), cells
    browser.wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#peer-rows tr")) == 2)
    browser.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "#history svg polyline"),
                 message="the count over time")
    browser.screenshot("bootstrap-dashboard-peers")

    row.find_element(By.CSS_SELECTOR, "button.block").click()
    browser.wait(lambda d: d.find_element(By.ID, "notice").text == f"Blocked {victim}",
                 message="blocked")
    browser.wait(lambda d: not d.find_elements(
        By.CSS_SELECTOR, f'#peer-rows tr[data-identifier="{victim}"]'), message="gone")
    browser.wait(lambda d: d.find_elements(
        By.CSS_SELECTOR, f'#block-list li[data-value="{victim}"]'), message="shown blocked")
    browser.wait(lambda d: d.find_elements(By.CSS_SELECTOR, '#audit-list li[data-action="block"]'),
                 message="the audit entry")
    browser.wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#task-rows tr")) == 1,
                 message="the task queued for the other node")
    assert [p["identifier"] for p in server.get("/v1/peers")["peers"]] == [
        identifier_for_public_key(keys[1])]
    driver.set_window_size(1280, 1400)
    path = browser.screenshot("bootstrap-dashboard")
    if DOCS_IMAGE.parent.is_dir() and (os.environ.get("P2PNET_TX_UPDATE_DOCS_IMAGES")
                                       or not DOCS_IMAGE.exists()):
        try:
            shutil.copyfile(path, DOCS_IMAGE)
        except OSError:
            pass  # an installed, read-only copy of the tests: the tmp screenshot is enough
    errors = [e for e in browser.console_errors() if "401" not in e and "/session" not in e]
    assert errors == [], errors
