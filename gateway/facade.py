"""The typed facade the views call: ``gw().patron(library).loans()``.

One method per contract method, with the contract's types. Each passes the contract
method itself (``Adapter.loans``) to the call pipeline, which reads its declaration
(``adapters.base.operation``: capability, write or read) — so no view names a
capability or a method as a string, and go-to-definition leads from a view through
this facade to the contract and its implementations.

    view ─► facade (typed) ─► pipeline (501, cache, sealed state, re-login)
         ─► guard (maintenance, circuit, cap, read retries) ─► adapter
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING, Any, TypeVar

from adapters.base import Adapter
from core.models import (
    Alert,
    AlertCreate,
    AlertUpdate,
    Cart,
    HistoryPage,
    Hold,
    Holding,
    HoldRequest,
    HoldResult,
    HoldUpdate,
    Loan,
    Message,
    Profile,
    ProfileUpdate,
    Record,
    RenewalResult,
    SearchQuery,
    SearchResult,
    Shelf,
    ShelfItem,
    UpstreamLending,
)

if TYPE_CHECKING:
    from gateway.auth import SessionContext
    from gateway.pipeline import CallPipeline

T = TypeVar("T")


class PatronCalls:
    """A patron's account at one library, within one session."""

    def __init__(self, pipeline: CallPipeline, ctx: SessionContext, library_id: str) -> None:
        self._pipeline = pipeline
        self._ctx = ctx
        self.library = library_id

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        result: T = self._pipeline.patron(self._ctx, self.library, fn, *args)
        return result

    def _cached(self, fn: Callable[..., T], *args: Any) -> T:
        """A read that may be answered from the session's short read cache."""
        result: T = self._pipeline.patron(self._ctx, self.library, fn, *args, cache=True)
        return result

    # account
    def profile(self) -> Profile:
        return self._cached(Adapter.profile)

    def update_profile(self, changes: ProfileUpdate, password: str | None) -> Profile:
        return self._call(Adapter.update_profile, changes, password)

    def change_password(self, current_password: str, new_password: str) -> None:
        self._call(Adapter.change_password, None, current_password, new_password)

    # loans and holds
    def loans(self) -> list[Loan]:
        return self._cached(Adapter.loans)

    def renew(self, loan_ids: list[str] | None) -> list[RenewalResult]:
        return self._call(Adapter.renew, loan_ids)

    def holds(self) -> list[Hold]:
        return self._cached(Adapter.holds)

    def place_holds(self, request: HoldRequest) -> list[HoldResult]:
        return self._call(Adapter.place_holds, request)

    def update_hold(self, hold_id: str, changes: HoldUpdate) -> Hold:
        return self._call(Adapter.update_hold, hold_id, changes)

    def cancel_hold(self, hold_id: str) -> None:
        self._call(Adapter.cancel_hold, hold_id)

    # cart, history, messages
    def cart(self) -> Cart:
        return self._cached(Adapter.cart)

    def cart_add(self, record_id: str) -> Cart:
        return self._call(Adapter.cart_add, record_id)

    def cart_remove(self, record_id: str) -> None:
        self._call(Adapter.cart_remove, record_id)

    def history(self, page: int, per_page: int) -> HistoryPage:
        return self._cached(Adapter.history, page, per_page)

    def messages(self, include_read: bool) -> list[Message]:
        return self._cached(Adapter.messages, include_read)

    # shelves
    def shelves(self) -> list[Shelf]:
        return self._cached(Adapter.shelves)

    def create_shelf(self, name: str) -> Shelf:
        return self._call(Adapter.create_shelf, name)

    def rename_shelf(self, shelf_id: str, name: str) -> Shelf:
        return self._call(Adapter.rename_shelf, shelf_id, name)

    def delete_shelf(self, shelf_id: str) -> None:
        self._call(Adapter.delete_shelf, shelf_id)

    def shelf_items(self, shelf_id: str) -> list[ShelfItem]:
        return self._cached(Adapter.shelf_items, shelf_id)

    def add_shelf_item(self, shelf_id: str, record_id: str) -> ShelfItem:
        return self._call(Adapter.add_shelf_item, shelf_id, record_id)

    def remove_shelf_item(self, shelf_id: str, record_id: str) -> None:
        self._call(Adapter.remove_shelf_item, shelf_id, record_id)

    def move_shelf_item(self, shelf_id: str, record_id: str, to_shelf_id: str, copy: bool) -> None:
        self._call(Adapter.move_shelf_item, shelf_id, record_id, to_shelf_id, copy)

    def export_shelf(self, shelf_id: str) -> str:
        return self._call(Adapter.export_shelf, shelf_id)

    # the library's own alerts (SDI)
    def alerts(self) -> list[Alert]:
        return self._cached(Adapter.alerts)

    def create_alert(self, alert: AlertCreate) -> Alert:
        return self._call(Adapter.create_alert, alert)

    def update_alert(self, alert_id: str, changes: AlertUpdate) -> Alert:
        return self._call(Adapter.update_alert, alert_id, changes)

    def delete_alert(self, alert_id: str) -> None:
        self._call(Adapter.delete_alert, alert_id)

    # consortium lending
    def create_lending_request(self, record_id: str, pickup_library: str,
                               pickup_branch: str | None) -> UpstreamLending:
        return self._call(Adapter.create_lending_request, record_id, pickup_library, pickup_branch)

    def lending_requests(self) -> list[UpstreamLending]:
        return self._call(Adapter.lending_requests)

    def cancel_lending_request(self, upstream_id: str) -> None:
        self._call(Adapter.cancel_lending_request, upstream_id)


class PublicCalls:
    """One library's calls that need no patron session."""

    def __init__(self, pipeline: CallPipeline, library_id: str) -> None:
        self._pipeline = pipeline
        self.library = library_id

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        result: T = self._pipeline.public(self.library, fn, *args)
        return result

    def search(self, query: SearchQuery) -> SearchResult:
        return self._call(Adapter.search, query)

    def record(self, record_id: str) -> Record:
        return self._call(Adapter.record, record_id)

    def availability(self, isbn: str) -> list[Holding]:
        return self._call(Adapter.availability, isbn)

    def register_password(self, card_number: str, birth_date: date, new_password: str) -> None:
        self._call(Adapter.register_password, card_number, birth_date, new_password)

    def change_password(self, card_number: str, current_password: str, new_password: str) -> None:
        """The forced first-login change of a temporary password (no session yet)."""
        self._call(Adapter.change_password, None, card_number, current_password, new_password)
