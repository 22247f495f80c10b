"""What a person does in the dashboard, one function per scenario: `fn(page, url=..., **args) -> dict`.

Run by `tests.browser.runner` in real Chromium. Every step waits with Playwright's `expect` (bounded by the
runner's step timeout), never with sleeps. The tests check the outcome again through the REST API.
"""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect


def sign_in(page: Page, url: str, key: str) -> None:
    page.goto(url + "/dashboard")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#sign-out")).to_be_visible()


def cell(page: Page, queue: str, col: str):
    return page.locator(f'#queues tr[data-queue="{queue}"] [data-col="{col}"]')


def sign_in_and_see_queues(page: Page, url: str, key: str, bad_key: str, bad_key_message: str,
                           expected: dict, totals: dict) -> dict:
    page.goto(url + "/dashboard")
    page.get_by_label("API key").fill(bad_key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text(bad_key_message)     # the server's own message

    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#sign-out")).to_be_visible()
    for queue, cols in expected.items():
        for col, value in cols.items():
            expect(cell(page, queue, col)).to_have_text(str(value))
    for state, n in totals.items():
        expect(page.locator(f'[data-total="{state}"] .n')).to_have_text(str(n))
    expect(page.locator(".chart canvas")).to_be_visible()
    expect(page.locator(".chart")).to_have_attribute("data-finished", str(totals["completed"] + totals["deadletter"]))
    live = page.locator("#live")
    expect(live).to_have_text(re.compile(r"^live: (connected|connecting|disconnected)$"))
    org = page.locator("header .org").inner_text()
    # a reload keeps the session (sessionStorage), and no action is hidden for a full key
    page.reload()
    expect(cell(page, next(iter(expected)), "pending")).to_be_visible()
    pause_buttons = page.locator("#queues").get_by_role("button", name=re.compile("^(Pause|Resume)$")).count()
    return {"org": org, "live": live.inner_text(), "pause_buttons": pause_buttons,
            "rows": page.locator("#queues tbody tr").count()}


def search_and_open_job(page: Page, url: str, key: str, queue: str, tag: str, text: str, tagged: list[str],
                        wanted: str) -> dict:
    sign_in(page, url, key)
    page.get_by_role("link", name="Jobs", exact=True).click()
    page.get_by_label("Queue").select_option(queue)
    page.get_by_label("Tag").fill(tag)
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#jobs tbody tr")).to_have_count(len(tagged))
    shown_tagged = sorted(page.locator("#jobs tbody tr").evaluate_all("rows => rows.map(r => r.dataset.jobId)"))
    assert shown_tagged == sorted(tagged), (shown_tagged, tagged)
    assert "tag=" in page.url and "queue=" in page.url          # the search is a link

    page.get_by_label("Tag").fill("")
    page.get_by_label("Text").fill(text)
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#jobs tbody tr")).to_have_count(1)
    expect(page.locator(f'#jobs tr[data-job-id="{wanted}"]')).to_be_visible()

    page.get_by_label("State").select_option("completed")
    page.get_by_role("button", name="Search").click()
    expect(page.locator(f'#jobs tr[data-job-id="{wanted}"]')).to_be_visible()
    page.get_by_label("State").select_option("pending")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("No jobs match.")).to_be_visible()
    page.get_by_label("State").select_option("completed")
    page.get_by_role("button", name="Search").click()

    page.locator(f'#jobs tr[data-job-id="{wanted}"] a').click()
    expect(page.locator("#job")).to_have_attribute("data-job-id", wanted)
    expect(page.locator("#job h1 .badge")).to_have_text("completed")
    events = page.locator("#history tbody tr").evaluate_all("rows => rows.map(r => r.dataset.event)")
    return {"payload": page.locator("#payload").inner_text(), "result": page.locator("#result").inner_text(),
            "error": page.locator("#last-error").inner_text(), "events": events,
            "retry_buttons": page.get_by_role("button", name="Retry").count(),
            "cancel_buttons": page.get_by_role("button", name="Cancel").count()}


def retry_dead_letters(page: Page, url: str, key: str, one: str, queue: str, in_queue: list[str],
                       elsewhere: str) -> dict:
    sign_in(page, url, key)
    page.get_by_role("link", name="Dead letters").click()
    for job_id in [one, *in_queue, elsewhere]:
        expect(page.locator(f'#jobs tr[data-job-id="{job_id}"]')).to_be_visible()
    page.locator(f'#jobs tr[data-job-id="{one}"]').get_by_role("button", name="Retry").click()
    expect(page.get_by_role("status").filter(has_text="retried")).to_be_visible()
    expect(page.locator(f'#jobs tr[data-job-id="{one}"]')).to_have_count(0)

    # retry every dead letter of one queue: the others stay
    page.get_by_label("Queue").select_option(queue)
    expect(page.locator("#jobs tbody tr")).to_have_count(len(in_queue))
    page.locator("#retry-all").click()
    page.get_by_role("button", name="Confirm retry").click()
    expect(page.get_by_role("status").filter(has_text=f"Retried {len(in_queue)} dead-lettered jobs in {queue}")
           ).to_be_visible()
    expect(page.get_by_text("No jobs match.")).to_be_visible()
    page.get_by_label("Queue").select_option("")
    expect(page.locator("#jobs tbody tr")).to_have_count(1)
    expect(page.locator(f'#jobs tr[data-job-id="{elsewhere}"]')).to_be_visible()

    # the retried job's own page shows it pending, with the retry in its history
    page.goto(f"{url}/dashboard#/jobs/{one}")
    expect(page.locator("#job h1 .badge")).to_have_text("pending")
    expect(page.locator('#history tr[data-event="retried"]')).to_have_count(1)
    return {}


def pause_and_resume(page: Page, url: str, key: str, to_pause: str, to_resume: str) -> dict:
    sign_in(page, url, key)
    expect(cell(page, to_pause, "state")).to_have_text("active")
    expect(cell(page, to_resume, "state")).to_have_text("paused")
    page.get_by_title(f"Pause queue {to_pause}").click()
    expect(cell(page, to_pause, "state")).to_have_text("paused")
    expect(page.get_by_role("status").filter(has_text=f"Queue {to_pause} paused")).to_be_visible()
    page.get_by_title(f"Resume queue {to_resume}").click()
    expect(cell(page, to_resume, "state")).to_have_text("active")
    page.reload()                                          # what the server says, not what the page remembers
    expect(cell(page, to_pause, "state")).to_have_text("paused")
    expect(cell(page, to_resume, "state")).to_have_text("active")
    return {}


def cancel_shows_server_error(page: Page, url: str, key: str, job_id: str, lease_id: str) -> dict:
    """The job finishes behind the page's back; Cancel then shows the server's 409 message."""
    sign_in(page, url, key)
    page.goto(f"{url}/dashboard#/jobs/{job_id}")
    expect(page.locator("#job h1 .badge")).to_have_text("processing")
    auth = {"Authorization": f"Bearer {key}"}
    done = page.request.post(f"{url}/api/v1/jobs/{job_id}/complete", headers=auth,
                             data={"lease_id": lease_id, "result": {"ok": True}})
    assert done.status == 200, done.text()
    page.get_by_role("button", name="Cancel").click()
    again = page.request.delete(f"{url}/api/v1/jobs/{job_id}", headers=auth)
    assert again.status == 409, again.text()
    message = again.json()["message"]
    expect(page.get_by_role("alert")).to_contain_text(message)
    return {"message": message}


def workers_and_current_jobs(page: Page, url: str, key: str, worker: str, job_id: str) -> dict:
    sign_in(page, url, key)
    page.get_by_role("link", name="Workers").click()
    row = page.locator(f'#workers tr[data-worker-id="{worker}"]')
    expect(row.locator(".badge")).to_have_text("healthy")
    expect(row.locator(f'.current a[href="#/jobs/{job_id}"]')).to_be_visible()
    row.locator(f'.current a[href="#/jobs/{job_id}"]').click()
    expect(page.locator("#job")).to_have_attribute("data-status", "processing")
    return {"worker_cell": page.locator("dl.facts").inner_text()}


def refresh_and_sign_out(page: Page, url: str, key: str) -> dict:
    sign_in(page, url, key)
    before = page.evaluate("sessionStorage.getItem('spooled.access_token')")
    # an access token the server refuses: the next request refreshes it once and goes on
    page.evaluate("sessionStorage.setItem('spooled.access_token', 'not-a-token')")
    page.get_by_role("link", name="Workers").click()
    expect(page.get_by_text("No workers have registered.")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_count(0)
    after = page.evaluate("sessionStorage.getItem('spooled.access_token')")
    refresh = page.evaluate("sessionStorage.getItem('spooled.refresh_token')")
    page.locator("#sign-out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    left = page.evaluate("Object.keys(sessionStorage).filter(k => k.startsWith('spooled.'))")
    page.reload()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    return {"before": before, "after": after, "refresh": refresh, "left": left}


def screenshots(page: Page, url: str, key: str, out: str, job_id: str) -> dict:
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    page.goto(url + "/dashboard")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    shots = {}

    def shot(name: str) -> None:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        shots[name] = str(path)

    shot("sign-in")
    sign_in(page, url, key)
    expect(page.locator("#queues tbody tr").first).to_be_visible()
    expect(page.locator(".chart canvas")).to_be_visible()
    shot("queues")
    page.get_by_role("link", name="Jobs", exact=True).click()
    expect(page.locator("#jobs tbody tr").first).to_be_visible()
    shot("jobs")
    page.goto(f"{url}/dashboard#/jobs/{job_id}")
    expect(page.locator("#history tbody tr").first).to_be_visible()
    shot("job")
    page.get_by_role("link", name="Workers").click()
    expect(page.locator("#workers tbody tr").first).to_be_visible()
    shot("workers")
    page.get_by_role("link", name="Dead letters").click()
    expect(page.locator("#jobs tbody tr").first).to_be_visible()
    shot("dead-letters")
    return shots


def api_reference(page: Page, url: str, operations: list[dict]) -> dict:
    """/docs offline: every request the page makes goes to this server (anything else is aborted and counted),
    the document renders with its operations, and one of them opens with its request body."""
    offsite: list[str] = []

    def only_here(route):
        if route.request.url.startswith(url):
            route.continue_()
        else:
            offsite.append(route.request.url)
            route.abort()
    page.route("**/*", only_here)
    page.goto(url + "/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Spooled")
    for o in operations:
        block = page.locator(f'.opblock-{o["method"]}:has(.opblock-summary-path[data-path="{o["path"]}"])')
        expect(block.first).to_be_visible()
        expect(block.first.locator(".opblock-summary-description")).to_have_text(o["summary"])
    shown = page.locator(".opblock").count()
    claim = page.locator('.opblock-post:has(.opblock-summary-path[data-path="/api/v1/jobs/claim"])').first
    claim.locator(".opblock-summary").click()
    expect(claim.locator(".opblock-section-request-body")).to_be_visible()
    expect(claim.get_by_text("lease_duration_secs").first).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("Authorize"))).to_be_visible()
    return {"shown": shown, "offsite": offsite}
