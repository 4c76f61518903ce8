"""Sends events with the official Segment Python library, unchanged, to a pronto server.

Usage: python3 send.py <host> <writeKey> <runId>. Exits non-zero if the library reports any delivery error.
The second client sends gzip-compressed batches, as the library does when `gzip=True`.
"""
import sys

from segment.analytics.client import Client

host, write_key, run_id = sys.argv[1:4]
errors = []


def on_error(error, items):
    errors.append(f"{error}: {len(items)} item(s)")


for gzip in (False, True):
    client = Client(write_key, host=host, gzip=gzip, on_error=on_error, max_retries=2)
    user = f"py-{run_id}-{'gz' if gzip else 'plain'}"
    # Each user its own number: a phone already owned by another user's contact would (rightly) stay there.
    phone = "+44 20 7946 0019" if gzip else "+44 20 7946 0018"
    client.identify(user, {"email": f"{user}@example.com", "phone": phone, "name": "Py Thon"})
    client.track(user, "Order Completed", {
        "order_id": f"o-{run_id}", "checkout_id": f"chk-{run_id}", "revenue": 42.0, "currency": "GBP",
        "products": [{"product_id": "p-9", "name": "Kettle", "price": 42.0, "quantity": 1}],
    })
    client.page(user, category="Docs", name="Install")
    client.screen(user, name="Home")
    client.group(user, f"grp-{run_id}", {"name": "Acme"})
    client.alias(f"prev-{user}", user)
    client.flush()
    client.join()

if errors:
    print("delivery errors:", errors, file=sys.stderr)
    sys.exit(1)
print("sent")
