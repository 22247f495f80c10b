"""`python -m tests.browser.runner SCENARIO JSON`: launch Debian's Chromium with Playwright, run the scenario,
print `RESULT <json>`. Imports nothing of the server (no trio-asyncio in this process)."""

from __future__ import annotations

import json
import os
import sys
import traceback

from playwright.sync_api import expect, sync_playwright

from tests.browser import scenarios

CHROMIUM = os.environ.get("SPOOLED_CHROMIUM", "/usr/bin/chromium")
# The flags known to work here (closed network, root, no GPU); Playwright adds --headless and the profile.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
STEP_TIMEOUT_MS = 10_000


def main() -> int:
    name, spec = sys.argv[1], json.loads(sys.argv[2])
    if not os.path.exists(CHROMIUM):
        print(f"Chromium is missing at {CHROMIUM}: install Debian's package (apt-get install chromium); "
              "never `playwright install`", file=sys.stderr)
        return 3
    profile = spec.pop("profile")
    errors: list[str] = []
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 1360, "height": 860}, locale="en-GB", timezone_id="UTC")
        try:
            context.set_default_timeout(STEP_TIMEOUT_MS)
            expect.set_options(timeout=STEP_TIMEOUT_MS)
            page = context.pages[0] if context.pages else context.new_page()
            page.on("pageerror", lambda exc: errors.append(f"uncaught in page: {exc}"))
            # the dashboard's Content-Security-Policy must not block any of its own code
            page.on("console", lambda msg: msg.type == "error" and "Content Security Policy" in msg.text
                    and errors.append(f"CSP violation: {msg.text}"))
            try:
                result = getattr(scenarios, name)(page, **spec)
            except Exception:
                traceback.print_exc()
                shot = profile + "-failure.png"
                try:
                    page.screenshot(path=shot, full_page=True)
                    print(f"screenshot of the failure: {shot}", file=sys.stderr)
                except Exception:
                    pass
                try:
                    print("page text at failure:\n" + page.inner_text("body")[:3000], file=sys.stderr)
                except Exception:
                    pass
                return 1
        finally:
            context.close()
    if errors:
        print("\n".join(errors), file=sys.stderr)
        return 2
    print("RESULT " + json.dumps(result if result is not None else {}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
