"""The chat page in headless Chromium, asserting what a person sees: sign in with a key, ask, read the
streamed answer, click a citation to read its passage, see the effort and cache statistics.

Needs Debian's `chromium` (scripts/test.sh installs it when it can) and Python's `playwright`
driver; skips without them. The screenshot goes to .artifacts/, which git ignores."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.bastion.conftest import Api

pytestmark = pytest.mark.llm
ARTIFACTS = Path(__file__).resolve().parents[2] / ".artifacts"


def _chromium() -> str | None:
    for candidate in (
        "/usr/lib/chromium/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    playwright = pytest.importorskip("playwright.sync_api")
    executable = _chromium()
    if executable is None:
        pytest.skip("Chromium is not installed (apt install chromium)")
    with playwright.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


def _sign_in_and_ask(page: Any, key: str, question: str) -> None:
    """What a person does: paste the key, sign in, ask, wait for the answer's figures to appear."""
    page.fill("#key", key)
    page.click("#signin-button")
    page.wait_for_function("!document.getElementById('question').disabled")
    page.fill("#question", question)
    page.click("#send")
    page.wait_for_selector(".msg.assistant .stats", timeout=120_000)


def test_sign_in_ask_and_read_a_cited_passage(api: Api, browser: object) -> None:
    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(api.url + "/")
    assert page.title() == "Bastion"
    page.fill("#key", "bst_wrong_key")
    page.click("#signin-button")
    page.wait_for_selector("#status.error")
    assert "not accepted" in page.inner_text("#status")
    assert page.is_disabled("#question")

    _sign_in_and_ask(page, api.keys["alice"], "How long is CCTV footage kept?")
    answer = page.inner_text(".msg.assistant")
    assert "Sources:" in answer
    stats = page.inner_text(".msg.assistant .stats")
    assert "effort none" in stats and "cached" in stats and "prompt" in stats

    citation = page.locator(".msg.assistant .cite").first
    label = citation.inner_text()
    citation.click()
    passage = page.inner_text("#passage")
    assert page.inner_text("#passage-title").startswith(label.split(" ")[0]) and len(passage) > 40
    assert "Click a citation" not in passage  # the placeholder gave way to the cited chunk's text

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-chat.png"), full_page=True)
    page.close()


def test_another_groups_user_sees_a_refusal_and_no_passage(api: Api, browser: object) -> None:
    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(api.url + "/")
    _sign_in_and_ask(page, api.keys["mallory"], "How long is CCTV footage kept?")
    assert "Not found in the documents you can access." in page.inner_text(".msg.assistant")
    assert "refused" in page.inner_text(".msg.assistant .stats")
    assert page.locator(".msg.assistant .cite").count() == 0
    page.close()
