"""A real headless browser for the tests of the status page: Debian's ``chromium`` package,
driven by Playwright through ``executable_path``. Nothing downloads a browser: Playwright's own
builds are never installed (``PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD``), and without Debian's
chromium the test skips, or fails in CI (``make test`` installs it as root).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from tests.harness import require_server

if TYPE_CHECKING:
    from playwright.async_api import Browser

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, for one test."""
    path = chromium_path()
    if path is None:
        require_server("chromium", "Debian's chromium package is not installed "
                       "(apt-get install chromium, or make test as root)")  # fmt: skip
    if importlib.util.find_spec("playwright") is None:
        require_server("playwright", "the playwright package is not installed "
                       "(pip install -e '.[test]')")  # fmt: skip
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=path)
        try:
            yield browser
        finally:
            await browser.close()
