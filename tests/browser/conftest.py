"""Real headless Chromium (Debian's package) driven by Playwright, against pytest-django's live server.

Chromium is installed by .ci/run; where it is missing these tests fail and say so, they never skip. axe-core
(vendored from npm by `make vendor-frontend`) is run on every page a journey visits.
"""

import json
import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
LAUNCH_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
# WCAG 2.2 AA and everything below it.
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
SCREENSHOTS = os.environ.get("SCREENSHOTS_DIR", "")


@pytest.fixture
def chromium(monkeypatch):
    """A browser per test: Playwright's sync API runs an event loop in this thread while it is open, so the test's
    own ORM reads (rows counted) are allowed for its length only, never for the tests that follow."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        pytest.fail("Chromium is missing: install Debian's package (apt-get install chromium); .ci/run does.")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"),
                                             args=LAUNCH_FLAGS)  # fmt: skip
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def web_server(django_db_setup, django_db_blocker):
    """pytest-django's live server, started here rather than through its `live_server` fixture.

    That fixture's autouse helper opens the transactional database before any fixture of ours, so the
    append-only triggers would be back in place when the database is flushed after the test. Requested
    through this fixture, the flush happens in the order tests/conftest.py's trigger fixtures expect.
    """
    from pytest_django.live_server_helper import LiveServer

    with django_db_blocker.unblock():
        server = LiveServer("localhost")
    yield server
    server.stop()


@pytest.fixture
def browser_world(append_only_relaxed_for_flush, transactional_db, web_server, world, drop_append_only_triggers_at_teardown):
    """The standing world, in a database the live server's thread shares, flushed after the test."""
    web_server._live_server_modified_settings.enable()
    yield world
    web_server._live_server_modified_settings.disable()


class Visitor:
    """One person's browser session: signs in, visits pages, and checks each one with axe-core."""

    def __init__(self, browser, base_url: str):
        self.context = browser.new_context(base_url=base_url, viewport={"width": 1100, "height": 900})
        self.page = self.context.new_page()
        self.checked: list[str] = []

    def sign_in(self, username: str, password: str):
        self.page.goto("/sign-in/")
        self.accessible("sign-in")
        self.page.fill("#id_username", username)
        self.page.fill("#id_password", password)
        self.page.click("button:has-text('Sign in')")
        return self.page

    def accessible(self, name: str = "") -> None:
        """No serious or critical WCAG 2.2 AA violation on the page as it stands; a screenshot if asked for."""
        self.page.evaluate(AXE.read_text(encoding="utf-8"))
        result = self.page.evaluate(
            "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})",
            WCAG_TAGS,
        )
        bad = [v for v in result["violations"] if v["impact"] in ("serious", "critical")]
        details = json.dumps([{"id": v["id"], "impact": v["impact"], "help": v["help"],
                               "targets": [n["target"] for n in v["nodes"]][:5]} for v in bad], indent=1)  # fmt: skip
        assert not bad, f"axe-core on {self.page.url}: {details}"
        self.checked.append(self.page.url)
        if SCREENSHOTS and name:
            Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)

    def close(self):
        self.context.close()


@pytest.fixture
def visitor(chromium, browser_world, web_server):
    opened = []

    def open_as(username: str, password: str):
        person = Visitor(chromium, web_server.url)
        opened.append(person)
        person.sign_in(username, password)
        return person

    yield open_as
    for person in opened:
        person.close()
