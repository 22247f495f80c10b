"""The SDK tier's smoke test: the SDK constructs, reaches health, and round-trips one job over REST."""

from spooled import SpooledClient

from _sdkcheck import API_KEY, BASE_URL, Checks

checks = Checks()
client = SpooledClient(api_key=API_KEY, base_url=BASE_URL)
with checks("health.get"):
    h = client.health.get()
    checks.expect(h.status in ("healthy", "ok"), "health status", h.status)
with checks("jobs.create+get"):
    created = client.jobs.create({"queue_name": "sdk-smoke", "payload": {"hello": "world"}})
    job = client.jobs.get(created.id)
    checks.expect(job.payload == {"hello": "world"} and job.status == "pending", "job", job)
checks.finish()
