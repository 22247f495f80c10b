"""The SDK's `billing` resource, every method (the server's Stripe is a local fake in the test)."""

from spooled import SpooledClient

from _sdkcheck import API_KEY, BASE_URL, Checks

checks = Checks()
client = SpooledClient(api_key=API_KEY, base_url=BASE_URL)

with checks("billing.get_status"):
    status = client.billing.get_status()
    checks.expect(status.has_stripe_customer and status.plan_tier == "pro", "status", status)
    checks.expect(status.stripe_subscription_id == "sub_sdk", "subscription", status)
with checks("billing.create_portal"):
    portal = client.billing.create_portal({"return_url": "https://app.example/billing"})
    checks.expect(portal.url.startswith("https://billing.stripe.test/"), "url", portal)
checks.finish()
