"""
Support for the browser tests: Debian's C{chromium}, headless, driven by its C{chromedriver} over the W3C
WebDriver protocol with plain C{urllib} and C{json} (no Selenium).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.process import free_port

#: Flags that let Debian's chromium run headless here (see /work/shared/NOTES.md, "Web").
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--window-size=900,600",
]  # fmt: skip


def find_chromium() -> tuple[str, str]:
    """
    The paths of C{chromium} and C{chromedriver}; C{make test-tools} installs them, so a missing one fails.
    """
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        raise AssertionError("chromium and chromedriver are not installed: run 'make test-tools'")
    return browser, driver


class Browser:
    """
    One headless chromium session, closed (with its driver) in the test's cleanup.
    """

    def __init__(self, case: SynchronousTestCase) -> None:
        """
        Start chromedriver on a free port and open a session with a fresh profile.
        """
        browser, driver = find_chromium()
        self.port = free_port()
        self.driver = subprocess.Popen(
            [driver, f"--port={self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        case.addCleanup(self._stop_driver)
        profile = tempfile.mkdtemp(prefix="sshfinger-chromium-")
        case.addCleanup(shutil.rmtree, profile, True)
        deadline = time.monotonic() + 20
        while True:
            try:
                self._call("GET", "/status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("chromedriver did not start") from None
                time.sleep(0.1)
        options = {"binary": browser, "args": [*CHROMIUM_ARGS, f"--user-data-dir={profile}"]}
        answer = self._call(
            "POST", "/session", {"capabilities": {"alwaysMatch": {"goog:chromeOptions": options}}}, timeout=60
        )
        self.session = answer["sessionId"]
        case.addCleanup(self.quit)

    def _call(self, method: str, path: str, body: Any = None, timeout: float = 30) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())["value"]

    def command(self, method: str, path: str, body: Any = None) -> Any:
        """
        Send one WebDriver command of this session and return its value.
        """
        return self._call(method, f"/session/{self.session}{path}", body)

    def get(self, url: str) -> None:
        """
        Load C{url} and wait for it.
        """
        self.command("POST", "/url", {"url": url})

    def script(self, source: str, *args: Any) -> Any:
        """
        Run JavaScript in the page (a function body: C{return ...}).
        """
        return self.command("POST", "/execute/sync", {"script": source, "args": list(args)})

    def wait_for(self, source: str, timeout: float, interval: float = 0.02) -> float:
        """
        Poll a JavaScript expression until it is true; return the seconds waited.

        @raise AssertionError: if it stays false for C{timeout} seconds.
        """
        started = time.monotonic()
        while not self.script(f"return Boolean({source});"):
            if time.monotonic() - started > timeout:
                raise AssertionError(f"{source} still false after {timeout} s")
            time.sleep(interval)
        return time.monotonic() - started

    def screenshot(self, path: str) -> bytes:
        """
        Save a PNG of the window to C{path} and return its bytes.
        """
        png = base64.b64decode(self.command("GET", "/screenshot"))
        with open(path, "wb") as f:
            f.write(png)
        return png

    def quit(self) -> None:
        """
        Close the session.
        """
        try:
            self._call("DELETE", f"/session/{self.session}")
        except OSError:
            pass

    def _stop_driver(self) -> None:
        self.driver.terminate()
        try:
            self.driver.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.driver.kill()
            self.driver.wait()
