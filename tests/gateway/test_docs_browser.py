"""/docs in a real browser: Debian's headless Chromium, driven by playwright.

The page must render the OpenAPI 3.1 document (Swagger UI 5 from the swagger-ui-py
package, no CDN: the browser runs with background networking off and any request
leaving loopback is refused), list every path of the contract, and "Try it out" on
GET /v1/libraries must show the sandbox's libraries.  A screenshot is written to
tmp_path, or to the folder $OPACGW_DOCS_SCREENSHOTS when set (docs/readme for the README):
docs.png (the operations) and docs-try-it-out.png (GET /v1/libraries executed).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from fixtures.registry import serve_app
from tests.gateway.test_contract_paths import API_MD, contract

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (.ci/run installs it)"),
]


@pytest.fixture
def served(sandbox):
    from gateway.app import create_app

    app = create_app(sandbox)
    server = serve_app(app, name="gateway")
    yield server.url
    server.stop()
    app.extensions["opacgw"].close()


def test_docs_render_and_try_it_out(served: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    outside: list[str] = []
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 1280, "height": 1400}, locale="en-US")
        try:
            def guard(route, request) -> None:  # nothing but the gateway itself
                if request.url.startswith(served):
                    route.continue_()
                else:
                    outside.append(request.url)
                    route.abort()

            context.route("**/*", guard)
            page = context.pages[0] if context.pages else context.new_page()
            page.goto(served + "/docs")
            page.wait_for_selector(".opblock", timeout=30_000)
            assert "Unable to render" not in page.content()
            listed = set()
            for block in page.query_selector_all(".opblock"):
                method = block.query_selector(".opblock-summary-method").inner_text().strip().upper()
                path = block.query_selector(".opblock-summary-path").get_attribute("data-path")
                listed.add((method, re.sub(r"\{[a-z_]+\}", "{}", path)))
            assert len(listed) >= 50
            if API_MD.exists():
                missing = [f"{m} {p}" for m, p in contract() if (m, p) not in listed]
                assert not missing, missing

            shots = Path(os.environ.get("OPACGW_DOCS_SCREENSHOTS") or tmp_path)
            page.screenshot(path=str(shots / "docs.png"), full_page=False)

            op = page.locator("#operations-libraries-libraries_list_libraries")
            op.locator(".opblock-summary").click()
            op.locator("button.try-out__btn").click()
            op.locator("button.execute").click()
            body = op.locator(".live-responses-table .response-col_description pre").first
            body.wait_for(timeout=30_000)
            text = body.inner_text()
            for lib in ("kumamoto-city", "kagoshima-pref", "niigata-city", "soap-demo"):
                assert lib in text
            status = op.locator(".live-responses-table tbody .response-col_status").first.inner_text()
            assert status.strip() == "200"

            op.scroll_into_view_if_needed()
            page.screenshot(path=str(shots / "docs-try-it-out.png"), full_page=False)
            for name in ("docs.png", "docs-try-it-out.png"):
                shot = shots / name
                assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
        finally:
            context.close()
    assert not outside, outside
