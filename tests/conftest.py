"""
Shared pytest configuration: tests run in a temporary working directory, so trial's
C{mktemp()} and twistd's files never land in the checkout.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def _work_in_temporary_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    previous = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    try:
        yield
    finally:
        os.chdir(previous)


@pytest.fixture(autouse=True)
def _no_unhandled_deferred_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """
    Fail a plain pytest test (trial's test cases do this themselves) that leaves a Deferred
    failing with nobody to handle it: Twisted only logs those, when they are collected.
    """
    if request.instance is not None and hasattr(request.instance, "flushLoggedErrors"):
        yield
        return
    from twisted.logger import globalLogPublisher

    unhandled: list[str] = []

    def observe(event: dict) -> None:
        if "Unhandled error in Deferred" in str(event.get("log_format", "")):
            failure = event.get("log_failure")
            unhandled.append(failure.getTraceback() if failure is not None else str(event))

    globalLogPublisher.addObserver(observe)
    try:
        yield
        gc.collect()
    finally:
        globalLogPublisher.removeObserver(observe)
    assert not unhandled, "unhandled errors in Deferreds:\n" + "\n".join(unhandled)


def pytest_sessionstart(session: pytest.Session) -> None:
    """
    With C{P2PNET_TX_TEST_INSTALLED=1} (CI's run of the unpacked sdist's tests against the
    installed wheel), refuse to run if the tests would import the sources beside them.
    """
    if not os.environ.get("P2PNET_TX_TEST_INSTALLED"):
        return
    import p2pnet_tx

    here = Path(__file__).resolve().parent.parent
    if Path(p2pnet_tx.__file__).resolve().is_relative_to(here):
        raise pytest.UsageError(
            f"P2PNET_TX_TEST_INSTALLED is set, but the tests import {p2pnet_tx.__file__}"
        )


@pytest.fixture
def browser(tmp_path):  # type: ignore[no-untyped-def]
    """
    A headless Chromium (L{tests.browser.Browser}) whose screenshots go to C{tmp_path}; the
    test is skipped, with the reason, where Chromium or its driver is not installed.
    """
    from tests.browser import open_browser

    with open_browser(tmp_path) as opened:
        yield opened
