"""Watched accounts: subscriptions, change events, signed webhooks, calendar URLs,
automatic renewal (issue #14).

- ``differ``   the pure comparison of an account's new snapshot with its last one;
- ``store``    subscriptions, snapshots, events, deliveries, leases (SQLite behind an interface);
- ``webhooks`` Standard Webhooks signing, delivery with retries, the SSRF rule;
- ``worker``   the poller and the delivery loop (``opacgw worker``; inside ``opacgw serve``
  in the sandbox).
"""
