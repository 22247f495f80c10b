"""The browser tier: Debian's Chromium (/usr/bin/chromium) driven by Playwright for Python against the real server.

Playwright's sync API runs its own asyncio loop, which cannot share a process with trio-asyncio (it patches
asyncio process-wide), so each scenario runs in a subprocess: `await browse("name", server, tmp_path, **args)` (`rig.py`)
runs `scenarios.name(page, url=..., **args)` via `python -m tests.browser.runner` and returns the JSON it
returned. A failed expectation, an uncaught page error or a missing Chromium exits non-zero and fails the test
with the scenario's output (never a skip). `playwright install` is never needed: the browser is Debian's.
"""
