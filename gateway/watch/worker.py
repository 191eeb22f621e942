"""The worker: polls each watched account, turns changes into events, renews loans
automatically, delivers webhooks.  The embedded scheduler is the SQLite store itself:
due accounts and deliveries are leased rows (``claim_due`` / ``claim_deliveries``), so
several workers (processes or threads) never poll one account at once nor send one
delivery twice, and ``max_polls_per_minute`` is counted over all of them.

Every upstream call goes through the gateway's own call pipeline (``gw.patron(lib, ctx)``):
the library's concurrency cap, circuit breaker and maintenance windows are shared with
API traffic, and a renewal follows the careful-write rule (``adapters.writes``).
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx

from adapters.base import Adapter
from core.errors import GatewayError, InvalidCredentials
from gateway.auth import SessionContext, throttled_login
from gateway.sessions import SessionRecord, StoredAccount
from gateway.watch import differ, webhooks
from gateway.watch.keys import seal, unseal
from gateway.watch.store import SubscriptionRow, WatchedAccount

if TYPE_CHECKING:
    from gateway.runtime import Gateway

log = logging.getLogger("opacgw.watch")

LEASE_SECONDS = 120.0
JITTER = 0.1


def new_event(sub_id: str, library: str, change: differ.Change, now: datetime) -> dict[str, Any]:
    return {"id": "evt_" + uuid.uuid4().hex, "type": change.type, "library": library,
            "occurred_at": now.isoformat(timespec="seconds"), "subject": change.subject, "data": change.data,
            "subscription_id": sub_id, "_key": f"{library}:{change.key}"}


class Watcher:
    """Polls and delivers on behalf of one Gateway (its store, pipeline and key)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway
        self.owner = f"{uuid.uuid4().hex[:12]}"
        self.http = httpx.Client(follow_redirects=False, timeout=webhooks.TIMEOUT_SECONDS)
        self.allow_loopback = gateway.settings.sandbox
        self.polls = 0
        self.snapshots = 0

    @property
    def store(self) -> Any:
        return self.gw.watch_store

    @property
    def cipher(self) -> Any:
        return self.gw.watch_cipher

    def interval(self, library: str) -> float:
        lib = self.gw.library(library)
        return lib.poll_interval or self.gw.settings.poll_interval_seconds

    def budgets(self) -> dict[str, int]:
        return {lib.id: lib.max_polls_per_minute for lib in self.gw.config.libraries.values()}

    # ------------------------------------------------------------ one poll
    def poll(self, acc: WatchedAccount) -> list[dict[str, Any]]:
        """Poll one leased account; returns the new events (already stored)."""
        sub = self.store.get(acc.subscription_id)
        if sub is None:
            return []
        try:
            return self._poll(sub, acc)
        finally:
            self.store.finish_poll(acc, self.owner, time.time() + self.interval(acc.library)
                                   * (1 + random.uniform(-JITTER, JITTER)))

    def _poll(self, sub: SubscriptionRow, acc: WatchedAccount) -> list[dict[str, Any]]:
        gw = self.gw
        cred = unseal(self.cipher, acc.credential)
        if not cred:
            return []
        self.polls += 1
        th = "watch:" + hashlib.sha256(f"{sub.id}\x00{acc.library}".encode()).hexdigest()
        now = datetime.now(UTC)
        try:
            upstream = acc.upstream
            if upstream is None or gw.crypto.open(upstream) is None:
                up = throttled_login(gw, acc.library, cred["card"],
                                     lambda: gw.pipeline.login(acc.library, cred["card"], cred["password"]))
                upstream = gw.crypto.seal(up.to_dict())
                self.store.save_upstream(sub.id, acc.library, upstream)
            stored = StoredAccount(acc.library, acc.card_hash, acc.card_masked, upstream)
            ctx = SessionContext(th, SessionRecord(th, now, now + timedelta(hours=1), [stored]))
            gw.vault.put(th, acc.library, cred["password"], time.time() + LEASE_SECONDS)
            try:
                snap, changes = self._read(sub, acc, ctx)
            finally:
                gw.vault.drop(th)
                gw.cache.invalidate(th)
                if stored.upstream != acc.upstream:
                    self.store.save_upstream(sub.id, acc.library, stored.upstream)
        except InvalidCredentials:
            log.warning("library refused the stored password: subscription paused subscription=%s library=%s",
                        sub.id, acc.library)
            self.store.pause(sub.id, acc.library)
            change = differ.Change("subscription.paused", f"subscription.paused:{now.timestamp():.0f}",
                                   {"kind": "subscription", "id": sub.id},
                                   {"reason": "the library rejected the stored password; log in and "
                                              "PATCH the subscription with status active"})
            return self.store.record(sub.id, acc.library, None, [new_event(sub.id, acc.library, change, now)],
                                     deliver=bool(sub.webhook_url))
        except GatewayError as err:
            log.info("watch poll failed subscription=%s library=%s code=%s", sub.id, acc.library, err.code)
            return []
        events = [new_event(sub.id, acc.library, c, now) for c in changes if c.type in sub.events]
        return self.store.record(sub.id, acc.library, seal(self.cipher, snap.model_dump(mode="json")), events,
                                 deliver=bool(sub.webhook_url))

    def _read(self, sub: SubscriptionRow, acc: WatchedAccount,
              ctx: SessionContext) -> tuple[differ.Snapshot, list[differ.Change]]:
        gw = self.gw
        lib = acc.library
        calls = gw.patron(lib, ctx)
        today = gw.library(lib).now().date()
        old_data = unseal(self.cipher, acc.snapshot)
        old = differ.Snapshot.model_validate(old_data) if old_data else None
        snap = self._snapshot(calls, lib, old, today)
        extra: list[differ.Change] = []
        if sub.auto_renew_days and gw.offers(lib, Adapter.renew):
            due = differ.auto_renew_candidates(snap, today, sub.auto_renew_days)
            if due:
                for result in calls.renew([l.id for l in due]):
                    loan = next(l for l in due if l.id == result.loan_id)
                    subj = {"kind": "loan", "id": loan.id, "title": loan.title, "record_id": loan.record_id}
                    if result.ok and result.loan is not None:
                        extra.append(differ.Change(
                            "loan.renewed", f"loan.renewed:{loan.id}:{result.loan.due_on}", subj,
                            {"due_on": result.loan.due_on.isoformat(), "previous_due_on": loan.due_on.isoformat(),
                             "automatic": True}))
                    else:
                        reason = (result.error.model_extra or {}).get("reason") if result.error else None
                        extra.append(differ.Change(
                            "loan.auto_renew_failed", f"loan.auto_renew_failed:{loan.id}:{loan.due_on}", subj,
                            {"due_on": loan.due_on.isoformat(), "reason": reason,
                             "detail": result.error.detail if result.error else None}))
                self._invalidate_patron_reads(acc)
                snap = self._snapshot(calls, lib, old, today)
        self.snapshots += 1
        changes = extra + differ.diff(old, snap, today, due_soon_days=sub.due_soon_days)
        # an automatic renewal is reported once, as automatic (same key as the differ's)
        seen: set[str] = set()
        unique = []
        for c in changes:
            if c.key not in seen:
                seen.add(c.key)
                unique.append(c)
        return snap, unique

    def _invalidate_patron_reads(self, acc: WatchedAccount) -> None:
        """An automatic renewal changed the account: the patron's own sessions must not be
        answered from their read cache with the old due dates."""
        try:
            with self.gw.db().tx() as tx:
                rows = tx.execute("SELECT token_hash FROM session_accounts WHERE library = ? AND card_hash = ?",
                                  (acc.library, acc.card_hash)).fetchall()
        except Exception:  # another session store: the cache's short TTL bounds the staleness
            log.debug("could not find the patron's sessions", exc_info=True)
            return
        for (th,) in rows:
            self.gw.cache.invalidate(th, acc.library)

    def _snapshot(self, calls: Any, lib: str, old: differ.Snapshot | None, today: Any) -> differ.Snapshot:
        gw = self.gw
        loans = calls.loans() if gw.offers(lib, Adapter.loans) else []
        holds = calls.holds() if gw.offers(lib, Adapter.holds) else []
        expires, read_on = (old.card_expires_on, old.profile_read_on) if old else (None, None)
        if read_on != today and gw.offers(lib, Adapter.profile):  # one more request, once a day
            expires, read_on = calls.profile().card_expires_on, today
        return differ.Snapshot(loans=loans, holds=holds, card_expires_on=expires, profile_read_on=read_on)

    # ------------------------------------------------------------ deliveries
    def deliver_due(self, limit: int = 16) -> int:
        rows = self.store.claim_deliveries(self.owner, time.time(), 60.0, limit)
        for row in rows:
            self._deliver(row)
        return len(rows)

    def _deliver(self, row: Any) -> None:
        sub = self.store.get(row.subscription_id)
        event = self.store.event(row.event_seq)
        now = time.time()
        if sub is None or event is None or not sub.webhook_url:
            self.store.delivery_attempt(row.id, self.owner, now, "failed", None, "no webhook_url", None)
            return
        secret = unseal(self.cipher, sub.secret)
        outcome, code, error = webhooks.send(self.http, sub.webhook_url, secret, event,
                                             allow_loopback=self.allow_loopback)
        next_at = None
        if outcome == "retry":
            first = row.first_failed_at or now
            if now - first >= webhooks.RETRY_WINDOW_SECONDS:
                outcome = "failed"
            else:
                next_at = now + webhooks.backoff(row.attempts + 1)
        self.store.delivery_attempt(row.id, self.owner, now, outcome, code, error, next_at)
        if outcome == "delivered" and sub.status == "failing":
            self.store.update(sub.id, status="active")
        elif outcome == "failed" and row.first_failed_at and now - row.first_failed_at >= webhooks.RETRY_WINDOW_SECONDS \
                and sub.status == "active":
            self.store.update(sub.id, status="failing")

    # ------------------------------------------------------------ loops
    def run_once(self, pool: ThreadPoolExecutor | None = None) -> int:
        due = self.store.claim_due(self.owner, time.time(), LEASE_SECONDS, self.budgets(), limit=16)
        if pool is None:
            for acc in due:
                self.poll(acc)
        else:
            list(pool.map(self._safe_poll, due))
        self.deliver_due()
        return len(due)

    def _safe_poll(self, acc: WatchedAccount) -> None:
        try:
            self.poll(acc)
        except Exception:
            log.exception("watch poll crashed library=%s", acc.library)

    def run(self, stop: threading.Event, tick: float = 0.25) -> None:
        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="watch") as pool:
            while not stop.is_set():
                try:
                    self.run_once(pool)
                except Exception:
                    log.exception("watch loop error")
                stop.wait(tick)

    def start(self) -> tuple[threading.Thread, threading.Event]:
        stop = threading.Event()
        t = threading.Thread(target=self.run, args=(stop,), name="watch-worker", daemon=True)
        t.start()
        return t, stop
