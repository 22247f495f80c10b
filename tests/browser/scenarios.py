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
    expect(live).to_have_text("live: connected")            # the realtime stream is open
    org = page.locator("header .org").inner_text()
    # a reload keeps the session (sessionStorage), and no action is hidden for a full key
    page.reload()
    expect(cell(page, next(iter(expected)), "pending")).to_be_visible()
    pause_buttons = page.locator("#queues").get_by_role("button", name=re.compile("^(Pause|Resume)$")).count()
    return {"org": org, "live": live.inner_text(), "pause_buttons": pause_buttons,
            "rows": page.locator("#queues tbody tr").count()}


def search_and_open_job(page: Page, url: str, key: str, queue: str, tag: str, text: str, tagged: list[str],
                        wanted: str, payload_text: str, payload_match: str) -> dict:
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
    page.get_by_label("Text").fill(payload_text)                # text of a payload field other than job_type
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#jobs tbody tr")).to_have_count(1)
    expect(page.locator(f'#jobs tr[data-job-id="{payload_match}"]')).to_be_visible()

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


ACTIONS = re.compile(r"^(Pause|Resume|Retry|Cancel|Retry all.*|Confirm retry|Trigger now|Cancel workflow|"
                     r"Retry workflow)$")


def buttons_on_pages(page: Page, url: str, key: str, routes: list[list[str]], read_only: bool) -> dict:
    """Every page of `routes` ([hash route, selector shown once its data is in]): the buttons it offers. A
    read-only key then signs out: the form comes back, the tab forgets the session."""
    sign_in(page, url, key)
    expect(page.locator("#read-only")).to_have_count(1 if read_only else 0)
    seen = {}
    for route, ready in routes:
        page.goto(f"{url}/dashboard#{route}")
        expect(page.locator(ready).first).to_be_visible()
        expect(page.locator("#read-only")).to_have_count(1 if read_only else 0)
        names = page.locator("main button").evaluate_all("bs => bs.map(b => b.textContent.trim())")
        seen[route] = names
        if read_only:
            assert not [n for n in names if ACTIONS.match(n)], (route, names)
    refresh = page.evaluate("sessionStorage.getItem('spooled.refresh_token')")
    page.locator("#sign-out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_count(0)
    left = page.evaluate("Object.keys(sessionStorage).filter(k => k.startsWith('spooled.'))")
    return {"buttons": seen, "refresh": refresh, "left": left}


def schedules_trigger_and_pause(page: Page, url: str, key: str, nightly: dict, paused: dict) -> dict:
    sign_in(page, url, key)
    page.get_by_role("link", name="Schedules", exact=True).click()
    row = page.locator(f'#schedules tr[data-schedule-id="{nightly["id"]}"]')
    for col, value in (("cron", nightly["cron_expression"]), ("zone", nightly["timezone"]), ("state", "active"),
                       ("runs", "0")):
        expect(row.locator(f'[data-col="{col}"]')).to_have_text(value)
    expect(row.locator('[data-col="next"] time')).to_have_attribute("datetime", nightly["next_run_at"])
    expect(row.locator('[data-col="last"]')).to_have_text("–")
    other = page.locator(f'#schedules tr[data-schedule-id="{paused["id"]}"]')
    expect(other.locator('[data-col="state"]')).to_have_text("paused")

    page.get_by_title(f"Trigger schedule {nightly['name']}").click()
    expect(page.get_by_role("status").filter(has_text=f"Schedule {nightly['name']} triggered")).to_be_visible()
    expect(row.locator('[data-col="runs"]')).to_have_text("1")
    expect(row.locator('[data-col="last"] time')).to_have_count(1)
    page.get_by_title(f"Resume schedule {paused['name']}").click()
    expect(other.locator('[data-col="state"]')).to_have_text("active")

    # the schedule's page: its run, with the job it enqueued
    row.get_by_role("link", name=nightly["name"]).click()
    expect(page.locator("#schedule")).to_have_attribute("data-schedule-id", nightly["id"])
    runs = page.locator("#runs tbody tr")
    expect(runs).to_have_count(1)
    expect(runs.first.locator(".badge")).to_have_text("pending")
    expect(runs.first).to_contain_text("(manual)")
    run_job = runs.first.get_attribute("data-job-id")
    page.locator("#schedule").get_by_role("button", name="Pause").click()
    expect(page.locator("#schedule")).to_have_attribute("data-active", "false")
    expect(page.locator("#schedule h1 .badge")).to_have_text("paused")
    # triggering a paused schedule still enqueues (api-notes): a second run
    page.locator("#schedule").get_by_role("button", name="Trigger now").click()
    expect(runs).to_have_count(2)
    jobs = runs.evaluate_all("rows => rows.map(r => r.dataset.jobId)")
    runs.first.locator("a.mono").click()
    expect(page.locator("#job")).to_have_attribute("data-job-id", jobs[0])
    page.goto(f"{url}/dashboard#/schedules")
    page.reload()                                          # what the server says, not what the page remembers
    expect(row.locator('[data-col="state"]')).to_have_text("paused")
    expect(row.locator('[data-col="runs"]')).to_have_text("2")
    expect(other.locator('[data-col="state"]')).to_have_text("active")
    return {"first_job": run_job, "jobs": jobs}


def dag_of(page: Page) -> dict:
    nodes = page.locator("#dag .node").evaluate_all(
        "ns => ns.map(n => [n.dataset.jobId, n.dataset.status, n.classList.contains('waiting')])")
    edges = page.locator("#dag .edge").evaluate_all("es => es.map(e => [e.dataset.parent, e.dataset.child])")
    return {"nodes": {i: [status, waiting] for i, status, waiting in nodes}, "edges": sorted(edges)}


def workflow_dag_and_actions(page: Page, url: str, key: str, workflow_id: str, name: str, queue: str,
                             ids: dict) -> dict:
    """The diamond A -> (B, C) -> D: its DAG, then A completed and B claimed over REST (seen after navigation),
    then Cancel and Retry from the page."""
    auth = {"Authorization": f"Bearer {key}"}

    def claim_one() -> dict:
        r = page.request.post(f"{url}/api/v1/jobs/claim", headers=auth,
                              data={"queue_name": queue, "worker_id": "dash-w", "limit": 1})
        assert r.status == 200, r.text()
        (j,) = r.json()["jobs"]
        return j

    sign_in(page, url, key)
    page.get_by_role("link", name="Workflows", exact=True).click()
    row = page.locator(f'#workflows tr[data-workflow-id="{workflow_id}"]')
    expect(row.locator(".badge")).to_have_text("pending")
    expect(row.locator('[data-col="progress"]')).to_contain_text("0/4")
    row.get_by_role("link", name=name).click()
    dag = page.locator("#dag")
    expect(dag.locator(".node")).to_have_count(4)
    expect(dag.locator(".edge")).to_have_count(4)
    first = dag_of(page)

    a = claim_one()
    assert a["id"] == ids["A"], a
    done = page.request.post(f"{url}/api/v1/jobs/{a['id']}/complete", headers=auth,
                             data={"lease_id": a["lease_id"], "result": {"ok": True}})
    assert done.status == 200, done.text()
    b = claim_one()
    assert b["id"] == ids["B"], b
    # navigate away and back: what the server says now
    page.get_by_role("link", name="Workflows", exact=True).click()
    expect(row.locator('[data-col="progress"]')).to_contain_text("1/4")
    expect(row.locator(".badge")).to_have_text("running")
    row.get_by_role("link", name=name).click()
    expect(dag.locator(f'.node[data-job-id="{ids["A"]}"]')).to_have_attribute("data-status", "completed")
    expect(dag.locator(f'.node[data-job-id="{ids["B"]}"]')).to_have_attribute("data-status", "processing")
    second = dag_of(page)

    # a node opens its job, which links back to the workflow
    dag.locator(f'.node[data-job-id="{ids["A"]}"]').click()
    expect(page.locator("#job")).to_have_attribute("data-job-id", ids["A"])
    expect(page.locator("#job h1 .badge")).to_have_text("completed")
    page.locator("#job-workflow").click()
    expect(page.locator("#workflow")).to_have_attribute("data-workflow-id", workflow_id)

    page.get_by_role("button", name="Cancel workflow").click()
    expect(page.get_by_role("status").filter(has_text=f"Workflow {name} cancelled")).to_be_visible()
    expect(page.locator("#workflow")).to_have_attribute("data-status", "cancelled")
    expect(dag.locator(f'.node[data-job-id="{ids["D"]}"]')).to_have_attribute("data-status", "cancelled")
    expect(page.get_by_role("button", name="Cancel workflow")).to_have_count(0)
    cancelled = dag_of(page)

    page.get_by_role("button", name="Retry workflow").click()
    expect(page.get_by_role("status").filter(has_text=f"Workflow {name} retried")).to_be_visible()
    expect(dag.locator(f'.node[data-job-id="{ids["C"]}"]')).to_have_attribute("data-status", "pending")
    retried = dag_of(page)
    return {"first": first, "second": second, "cancelled": cancelled, "retried": retried,
            "status": page.locator("#workflow").get_attribute("data-status")}


# Records each state the header's live indicator shows (installed before the page's own scripts run).
RECORD_LIVE_STATES = """
window.__liveStates = [];
new MutationObserver(() => {
  const el = document.getElementById("live");
  if (el && window.__liveStates[window.__liveStates.length - 1] !== el.dataset.state) {
    window.__liveStates.push(el.dataset.state);
  }
}).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-state"] });
"""


def live_job_moves(page: Page, url: str, key: str, queue: str, job_id: str, text: str) -> dict:
    """Three tabs stay where they are (the Queues page, the job's page, a search that finds the job) while the
    job is claimed, then completed, over REST: each shows every move, with no navigation and no reload."""
    auth = {"Authorization": f"Bearer {key}"}
    errors: list[str] = []

    def tab(route: str | None) -> Page:
        t = page if route is None else page.context.new_page()
        if t is not page:
            t.on("pageerror", lambda exc: errors.append(f"uncaught in page: {exc}"))
        sign_in(t, url, key)
        if route:
            t.goto(f"{url}/dashboard#{route}")
        expect(t.locator("#live")).to_have_text("live: connected")
        t.evaluate("window.__stayed = true")        # gone if the document were loaded again
        return t

    queues = tab(None)
    expect(cell(queues, queue, "pending")).to_have_text("1")
    one = tab(f"/jobs/{job_id}")
    expect(one.locator("#job h1 .badge")).to_have_text("pending")
    found = tab(f"/jobs?q={text}")
    row = found.locator(f'#jobs tr[data-job-id="{job_id}"]')
    expect(row.locator(".badge")).to_have_text("pending")
    expect(found.locator("#jobs tbody tr")).to_have_count(1)
    urls = [t.url for t in (queues, one, found)]

    r = page.request.post(f"{url}/api/v1/jobs/claim", headers=auth,
                          data={"queue_name": queue, "worker_id": "live-w", "limit": 1})
    (leased,) = r.json()["jobs"]
    assert leased["id"] == job_id, leased
    expect(one.locator("#job h1 .badge")).to_have_text("processing")
    expect(row.locator(".badge")).to_have_text("processing")
    expect(cell(queues, queue, "processing")).to_have_text("1")
    expect(cell(queues, queue, "pending")).to_have_text("0")
    expect(queues.locator('[data-total="processing"] .n')).to_have_text("1")

    done = page.request.post(f"{url}/api/v1/jobs/{job_id}/complete", headers=auth,
                             data={"lease_id": leased["lease_id"], "result": {"live": True}})
    assert done.status == 200, done.text()
    expect(one.locator("#job h1 .badge")).to_have_text("completed")
    expect(one.locator("#result")).to_contain_text('"live": true')
    expect(row.locator(".badge")).to_have_text("completed")
    expect(cell(queues, queue, "completed")).to_have_text("1")
    expect(cell(queues, queue, "processing")).to_have_text("0")
    expect(queues.locator('[data-total="completed"] .n')).to_have_text("1")
    expect(queues.locator(".chart")).to_have_attribute("data-finished", "1")

    assert [t.url for t in (queues, one, found)] == urls
    assert all(t.evaluate("window.__stayed === true") for t in (queues, one, found))
    assert not errors, errors
    return {"events": one.locator("#history tbody tr").evaluate_all("rows => rows.map(r => r.dataset.event)")}


def stream_refreshes_a_refused_token(page: Page, url: str, key: str) -> dict:
    """A garbage access token when the stream opens: the server refuses it, the indicator says so, and the
    stream comes back on its own with a refreshed token. On a page that makes no REST call, so the refresh is
    the stream's own doing."""
    page.add_init_script(RECORD_LIVE_STATES)
    sign_in(page, url, key)
    expect(page.locator("#live")).to_have_text("live: connected")
    page.goto(f"{url}/dashboard#/nowhere")
    expect(page.get_by_text("No such page.")).to_be_visible()
    page.evaluate("sessionStorage.setItem('spooled.access_token', 'garbage')")
    page.reload()
    expect(page.locator("#live")).to_have_text("live: connected")
    expect(page.locator("#sign-out")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_count(0)
    return {"states": page.evaluate("window.__liveStates"),
            "token": page.evaluate("sessionStorage.getItem('spooled.access_token')")}


def screenshots(page: Page, url: str, key: str, out: str, job_id: str, schedule_id: str, workflow_id: str) -> dict:
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
    expect(page.locator("#live")).to_have_text("live: connected")
    expect(page.locator("#queues tbody tr").first).to_be_visible()
    expect(page.locator(".chart canvas")).to_be_visible()
    expect(page.locator(".chart")).not_to_have_attribute("data-finished", "")
    shot("queues")
    for name, route, ready in [("jobs", "/jobs", "#jobs tbody tr"), ("job", f"/jobs/{job_id}", "#history tbody tr"),
                               ("workers", "/workers", "#workers tbody tr"),
                               ("schedules", "/schedules", "#schedules tbody tr"),
                               ("schedule", f"/schedules/{schedule_id}", "#runs tbody tr"),
                               ("workflows", "/workflows", "#workflows tbody tr"),
                               ("workflow", f"/workflows/{workflow_id}", "#dag .node"),
                               ("dead-letters", "/dlq", "#jobs tbody tr")]:
        page.goto(f"{url}/dashboard#{route}")
        expect(page.locator(ready).first).to_be_visible()
        shot(name)
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
