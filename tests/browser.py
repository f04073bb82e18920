"""
A headless Chromium for the tests of web pages (the node dashboard; the bootstrap server's,
later), driven by Selenium through Debian's C{chromium} and C{chromium-driver} packages.

Why Selenium and not Playwright: Selenium talks to the C{chromedriver} that Debian builds from
the same source as its C{chromium}, so browser and driver always match, and nothing is
downloaded (a Playwright release expects the browser build it downloads itself).  C{.ci/run}
installs both packages when they are missing; elsewhere a test that needs a browser is skipped,
with the reason, when either is absent.

Use the C{browser} fixture (C{tests/conftest.py}): it gives a L{Browser} whose screenshots go
to the test's C{tmp_path}, and quits Chromium afterwards.  The pages under test run in
C{twistd} child processes (L{start_twistd}, L{stop_process}); L{wait_until} waits for them
and L{Browser.log_in} goes through a dashboard's login.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

CHROMIUM = "/usr/bin/chromium"
"""Debian's Chromium."""

CHROMEDRIVER = "/usr/bin/chromedriver"
"""Debian's ChromeDriver, built with L{CHROMIUM}."""

WAIT_SECONDS = 20.0
"""How long L{Browser.wait} waits at most, unless told otherwise."""

START_SECONDS = 30.0
"""How long L{wait_until} waits at most, unless told otherwise (a C{twistd} starting)."""

T = TypeVar("T")


def wait_until(predicate: Callable[[], Any], timeout: float = START_SECONDS,
               what: str = "condition") -> Any:
    """
    Poll C{predicate} every 0.1 s until it returns something true, and return that; an
    C{OSError}, C{ValueError} or C{KeyError} it raises (a file or an answer not there yet)
    counts as false.

    @raise AssertionError: after C{timeout} seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = predicate()
        except (OSError, ValueError, KeyError):
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        time.sleep(0.1)


def start_twistd(log: Path, *arguments: str) -> subprocess.Popen[bytes]:
    """
    Start C{twistd -n --pidfile= <arguments>} in this Python, its output going to C{log}
    (a file, so that nothing waits on a pipe).

    @return: the child process.
    """
    with open(log, "wb") as output:
        return subprocess.Popen(
            [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
             "-n", "--pidfile=", *arguments],
            stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def stop_process(process: subprocess.Popen[bytes], log: Path) -> str:
    """
    Stop C{process} (SIGTERM, then SIGKILL after 10 s) and return its C{log}.
    """
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    return log.read_text(errors="replace")


def missing_browser() -> str | None:
    """
    Why no browser test can run here, or C{None} if one can.

    @return: the reason (a missing package or executable), to skip with.
    """
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return (f"{path} is not installed (apt-get install --no-install-recommends "
                    f"{package}; .ci/run does this)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


class Browser:
    """
    A headless Chromium and where its screenshots go.

    @ivar driver: the Selenium WebDriver.
    @ivar screenshots: the directory screenshots are saved in.
    """

    def __init__(self, driver: Any, screenshots: Path) -> None:
        self.driver = driver
        self.screenshots = screenshots

    def wait(self, condition: Callable[[Any], T], timeout: float = WAIT_SECONDS,
             message: str = "") -> T:
        """
        Wait until C{condition(driver)} is true (an element that went stale or is not there
        yet counts as false), and return what it returned.

        @raise selenium.common.exceptions.TimeoutException: after C{timeout} seconds.
        """
        from selenium.common.exceptions import (
            NoSuchElementException,
            StaleElementReferenceException,
        )
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(
            self.driver, timeout, poll_frequency=0.1,
            ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
        ).until(condition, message)

    def screenshot(self, name: str) -> Path:
        """
        Save a PNG of the window as C{<screenshots>/<name>.png}, and print its path.

        @return: the path.
        """
        path = self.screenshots / f"{name}.png"
        if not self.driver.save_screenshot(str(path)):
            raise AssertionError(f"Chromium could not save the screenshot {path}")
        print(f"screenshot: {path}")
        return path

    def log_in(self, url: str, token: str, cookie_name: Callable[[str], bool]) -> None:
        """
        Open the dashboard at C{url}, be refused with a wrong token, log in with C{token},
        and check that the session cookie (the one whose name C{cookie_name} accepts) is
        C{HttpOnly} and C{SameSite=Strict}, out of any script's reach.

        @raise AssertionError: when any of that is not so.
        """
        from selenium.webdriver.common.by import By

        driver = self.driver
        driver.get(url)
        self.wait(lambda d: d.find_element(By.ID, "login").is_displayed(), message="login form")
        assert not driver.find_element(By.ID, "app").is_displayed()
        driver.find_element(By.ID, "token").send_keys("not the token\n")
        self.wait(lambda d: "wrong token" in d.find_element(By.ID, "notice").text,
                  message="refusal")
        driver.find_element(By.ID, "token").send_keys(token + "\n")
        self.wait(lambda d: d.find_element(By.ID, "app").is_displayed(), message="dashboard")
        [cookie] = [c for c in driver.get_cookies() if cookie_name(c["name"])]
        assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict", cookie
        assert driver.execute_script("return document.cookie") == "", "no script can read it"

    def console_errors(self) -> list[str]:
        """The messages of level SEVERE in the page's console so far."""
        return [entry["message"] for entry in self.driver.get_log("browser")
                if entry.get("level") == "SEVERE"]


@contextmanager
def open_browser(directory: Path, width: int = 1280, height: int = 900) -> Iterator[Browser]:
    """
    Start a headless Chromium with a fresh profile in C{directory}; quit it on the way out.

    The test is skipped (with the reason) when Chromium, its driver or Selenium is missing.

    @param directory: for the profile and the screenshots.
    @param width: the window's width, in CSS pixels.
    @param height: its height.
    """
    reason = missing_browser()
    if reason is not None:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = directory / "chromium-profile"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium then never looks for (or downloads) one itself.
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        driver.set_page_load_timeout(WAIT_SECONDS)
        yield Browser(driver, directory)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
