"""Patron sessions as the views see them: log in (every account at once), find the
session from the bearer token (sliding expiry), log out.

The store (``gateway.sessions``) keeps the records; this module decides what goes in.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from flask import g, request

from adapters.base import UpstreamSession
from core.errors import (
    CardNumberInvalid,
    GatewayError,
    InvalidCredentials,
    InvalidRequest,
    LibraryNotInSession,
    Unauthenticated,
)
from gateway.config import LibraryConfig
from gateway.models import AccountLogin, AccountState, Problem
from gateway.sessions import SessionRecord, StoredAccount, expiry, new_token, token_hash

if TYPE_CHECKING:
    from gateway.runtime import Gateway

log = logging.getLogger("opacgw")
T = TypeVar("T")


@dataclass(frozen=True)
class AccountRef:
    library: str
    card_hash: str
    card_number_masked: str


@dataclass
class SessionContext:
    token_hash: str
    record: SessionRecord


def normalize_card(library: LibraryConfig, raw: str) -> str:
    from mappers import MappingError
    from mappers.cards import normalize_card_number

    try:
        return normalize_card_number(raw, digits=library.card_number.digits, pad=library.card_number.pad)
    except MappingError as exc:
        digits = library.card_number.digits
        want = f"{digits} digits" if digits else "digits only"
        raise CardNumberInvalid(
            f"not a card number of {library.name} ({want}, e.g. {library.card_number.example}): {exc}",
            library=library.id,
        ) from None


def mask(card: str) -> str:
    from mappers.cards import mask_card_number

    return mask_card_number(card)


def throttled_login(gw: Gateway, library: str, card: str, fn: Callable[[], T]) -> T:
    """Run a login-like call ``fn`` (it sends the card's password upstream) under the card's
    failure budget: 429 without calling when spent; a rejected password spends from it."""
    card_hash = gw.crypto.card_hash(library, card)
    with gw.throttle.card_lock(library, card_hash):
        gw.throttle.check_card(library, card_hash)
        try:
            result = fn()
        except InvalidCredentials:
            gw.throttle.card_failed(library, card_hash)
            raise
        gw.throttle.card_succeeded(library, card_hash)
        return result


class Sessions:
    """Login, the current session, logout — on behalf of one Gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway
        self._last_purge = 0.0

    def login(self, accounts: list[AccountLogin]) -> tuple[str, SessionRecord, list[AccountState]]:
        gw = self.gw
        seen: set[str] = set()
        for acc in accounts:
            if acc.library in seen:
                raise InvalidRequest(f"two accounts at {acc.library!r} in one session",
                                     errors=[{"field": "accounts", "message": "duplicate library"}])
            seen.add(acc.library)

        def one(acc: AccountLogin) -> tuple[StoredAccount | None, AccountState, GatewayError | None]:
            try:
                lib = gw.library(acc.library)
                card = normalize_card(lib, acc.card_number)
                up = throttled_login(gw, lib.id, card, lambda: gw.pipeline.login(lib.id, card, acc.password))
                stored = StoredAccount(lib.id, gw.crypto.card_hash(lib.id, card), mask(card),
                                       gw.crypto.seal(up.to_dict()))
                return stored, AccountState(library=lib.id, ok=True, card_number_masked=mask(card)), None
            except GatewayError as err:
                err.with_library(acc.library)
                log.info("login refused library=%s code=%s", acc.library, err.code)
                return None, AccountState(library=acc.library, ok=False, error=Problem(**err.to_problem())), err

        if len(accounts) == 1:
            results = [one(accounts[0])]
        else:
            results = list(gw.executor.map(one, accounts))
        ok = [r for r in results if r[0] is not None]
        if not ok:
            first_error = results[0][2]
            assert first_error is not None
            raise first_error
        now = datetime.now(UTC)
        token = new_token()
        th = token_hash(token)
        record = SessionRecord(th, now, expiry(now, gw.settings.session_ttl_minutes),
                               [r[0] for r in ok if r[0] is not None])
        gw.store.create(record)
        self._purge_now_and_then(now)
        vault_exp = record.expires_at.timestamp()
        by_lib = {a.library: a for a in accounts}
        for stored in record.accounts:
            gw.vault.put(th, stored.library, by_lib[stored.library].password, vault_exp)
        return token, record, [r[1] for r in results]

    def _purge_now_and_then(self, now: datetime) -> None:
        """Drop expired sessions and credentials at most once a minute."""
        if time.monotonic() - self._last_purge < 60:
            return
        self._last_purge = time.monotonic()
        self.gw.store.purge(now)
        self.gw.vault.purge()

    def current(self, required: bool = True) -> SessionContext | None:
        if "opacgw_session" in g:
            return g.opacgw_session  # type: ignore[no-any-return]
        gw = self.gw
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            if required:
                raise Unauthenticated("send Authorization: Bearer <token> from POST /v1/sessions")
            return None
        th = token_hash(token.strip())
        now = datetime.now(UTC)
        record = gw.store.get(th, now)
        if record is None:
            gw.vault.drop(th)
            raise Unauthenticated("the session token is unknown or expired; log in again")
        new_exp = expiry(now, gw.settings.session_ttl_minutes)
        if (new_exp - record.expires_at).total_seconds() > 30:  # sliding expiry, few writes
            gw.store.touch(th, new_exp)
            gw.vault.extend(th, new_exp.timestamp())
            record.expires_at = new_exp
        ctx = SessionContext(th, record)
        g.opacgw_session = ctx
        return ctx

    def logout(self) -> None:
        gw = self.gw
        ctx = self.current()
        assert ctx is not None
        for acc in ctx.record.accounts:
            data = gw.crypto.open(acc.upstream)
            if data is None:
                continue
            try:
                gw.pipeline.logout(acc.library, UpstreamSession.from_dict(data))
            except GatewayError as err:  # logging out upstream is best effort
                log.info("upstream logout failed library=%s code=%s", acc.library, err.code)
            except Exception:
                log.exception("upstream logout crashed library=%s", acc.library)
        gw.store.delete(ctx.token_hash)
        gw.vault.drop(ctx.token_hash)
        gw.cache.invalidate(ctx.token_hash)

    def account(self, library_id: str) -> AccountRef:
        ctx = self.current()
        assert ctx is not None
        self.gw.library(library_id)
        acc = ctx.record.account(library_id)
        if acc is None:
            raise LibraryNotInSession(f"this session holds no account at {library_id!r}", library=library_id)
        return AccountRef(acc.library, acc.card_hash, acc.card_number_masked)

    def accounts(self) -> list[AccountRef]:
        ctx = self.current()
        assert ctx is not None
        return [AccountRef(a.library, a.card_hash, a.card_number_masked) for a in ctx.record.accounts]

