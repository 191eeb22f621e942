"""The adapter contract: one method per capability, capabilities declared as class data.

An adapter talks to one upstream family (a vendor's OPAC portal, an NCIP responder,
a SOAP service, ...).  One instance serves one configured library; it is shared by
all patrons of that library and must keep no per-patron state of its own: the
patron's upstream state (cookies, hidden form tokens) lives in an
``UpstreamSession`` that the gateway stores encrypted and hands back on each call.

Rules (DESIGN.md):
- fetch, then parse: network code is thin, parsing is pure (``parse_*`` functions
  tested on saved pages);
- raise ``core.errors`` types; a page that cannot be understood is
  ``UpstreamChanged``, never an empty list;
- raise ``SessionExpired`` when the upstream session is gone, and only before the
  upstream acted (e.g. the first page of a flow redirected to the login form): the
  gateway then logs in again and repeats the call, read or write;
- never retry a write blindly.

A method an adapter does not override raises ``NotSupported``; the gateway checks
``capabilities`` first and answers 501 without calling.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import httpcore
import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from core.config import ConfigError
from core.errors import (
    NotSupported,
    UpstreamTimeout,
    UpstreamUnreachable,
)
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
    from core.config import LibraryConfig

USER_AGENT = "opac-gateway/0.1 (+https://opac-gateway.dev)"

#: called after every upstream HTTP exchange with (library id, method, URL path, status,
#: milliseconds to the response's headers); the gateway's request log registers here
UPSTREAM_OBSERVERS: list[Callable[[str, str, str, int, float], None]] = []
#: called with each cookie value an upstream sets (the gateway's log never shows one)
UPSTREAM_SECRETS: list[Callable[[str], None]] = []


@dataclass
class UpstreamSession:
    """A patron's state at one upstream: cookies and adapter data (e.g. hid_session).

    Serialised to JSON and stored encrypted by the gateway; never logged.
    """

    card_number: str
    cookies: dict[str, str] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    #: set by the gateway: stores this state now (not serialised).  ``adapters.writes``
    #: calls it before a write's last step, so its intent survives a lost answer.
    saver: Callable[[UpstreamSession], None] | None = field(default=None, repr=False, compare=False)

    def checkpoint(self) -> None:
        """Have the gateway store this state now (a no-op outside the gateway)."""
        if self.saver is not None:
            self.saver(self)

    def to_dict(self) -> dict[str, Any]:
        return {"card_number": self.card_number, "cookies": self.cookies, "data": self.data}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UpstreamSession:
        return cls(card_number=d["card_number"], cookies=dict(d.get("cookies", {})), data=dict(d.get("data", {})))

    def __repr__(self) -> str:  # never print cookies or the card number
        return f"UpstreamSession(card=…{self.card_number[-4:]}, cookies={len(self.cookies)})"


class AdapterOptions(BaseModel):
    """``[libraries.<id>.options]`` of a library: each family subclasses this with its keys
    (``Adapter.options_model``); the base accepts any keys for families without a model."""

    model_config = ConfigDict(extra="allow", frozen=True)


@dataclass(frozen=True)
class SecretFields:
    """What an adapter sends that is secret, by field name: urlencoded form fields for the
    portal families, XML element local names for NCIP and SOAP.  The cassette scrubbers
    (``fixtures.cassettes.scrubber_for``) and ``tests/test_no_secrets.py`` read this, so
    scrubbing follows what the adapter posts."""

    #: passwords, PINs, birth dates used as a password: never written anywhere
    secret: frozenset[str] = frozenset()
    #: card numbers: masked to the last four digits
    cards: frozenset[str] = frozenset()
    #: session ids and anti-forgery tokens (also as hidden inputs of pages): replaced
    tokens: frozenset[str] = frozenset()
    #: HTTP headers carrying the gateway's own credentials
    headers: frozenset[str] = frozenset()

    def __or__(self, other: SecretFields) -> SecretFields:
        return SecretFields(self.secret | other.secret, self.cards | other.cards,
                            self.tokens | other.tokens, self.headers | other.headers)


def validate_options(model: type[BaseModel], library: LibraryConfig) -> BaseModel:
    """``library.options`` as ``model``; a bad key is a ``ConfigError`` naming library and key."""
    try:
        return model.model_validate(library.options or {})
    except ValidationError as exc:
        problems = "; ".join(f"options.{'.'.join(str(x) for x in e['loc'])}: {e['msg']}"
                             for e in exc.errors())
        raise ConfigError(f"library {library.id!r}: {problems}") from None


_deadline = threading.local()


def _bounded(timeout: float | None, kind: type[Exception]) -> float | None:
    """``timeout`` cut to what is left of the current request's total deadline."""
    at: float | None = getattr(_deadline, "at", None)
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise kind("the total deadline of the upstream request passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A socket whose every read and write waits at most until the request's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname,
                                                     _bounded(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None, socket_options: Any = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.connect_tcp(
            host, port, _bounded(timeout, httpcore.ConnectTimeout), local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Any = None) -> httpcore.NetworkStream:  # pragma: no cover
        return _DeadlineStream(self._inner.connect_unix_socket(
            path, _bounded(timeout, httpcore.ConnectTimeout), socket_options))

    def sleep(self, seconds: float) -> None:  # pragma: no cover - retries only
        self._inner.sleep(seconds)


class _SharedTransport(httpx.HTTPTransport):
    """A pooled transport shared by the per-call clients of one adapter; closing a
    client must not close the pool.

    Every request has a total deadline (``deadline`` seconds: connect, send, headers and
    the whole body): each socket read and write waits at most for what is left of it, so
    a portal sending its page a few bytes at a time gets ``httpx.ReadTimeout`` (→ 504
    ``upstream_timeout``, or the careful-write re-read of a write) instead of holding the
    request as long as it keeps dripping.  The deadline is per thread: httpx reads the
    body in the thread that sent the request.
    """

    def __init__(self, *, deadline: float | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.deadline = deadline
        pool = self._pool
        pool._network_backend = _DeadlineBackend(pool._network_backend)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        _deadline.at = None if self.deadline is None else time.monotonic() + self.deadline
        return super().handle_request(request)

    def close(self) -> None:
        pass

    def __exit__(self, *exc: object) -> None:
        # ``with client:`` exits the transport too (httpx), which would close every
        # pooled connection — including ones other threads are reading from.
        pass

    def really_close(self) -> None:
        super().close()


@dataclass(frozen=True)
class Operation:
    """A contract method's declaration: the capability that gates it and how it is called.

    ``capabilities``: the method is offered when the adapter declares any of them (the
    first one names it in a 501); ``write``: it changes upstream state, so the gateway
    never retries it and drops the session's read cache after it; ``session``: it needs
    a patron's upstream session (True), none (False), or either (None).
    """

    name: str
    capabilities: tuple[str, ...]
    write: bool = False
    session: bool | None = True

    @property
    def capability(self) -> str:
        return self.capabilities[0]


_OPERATION_ATTR = "__opacgw_operation__"
F = TypeVar("F", bound=Callable[..., Any])


def operation(*capabilities: str, write: bool = False, session: bool | None = True) -> Callable[[F], F]:
    """Declare a contract method's capability once, on ``Adapter`` (``@operation("loans")``).

    The gateway's 501 check, its retry and cache rules and the conformance test all read
    this declaration (``declared``); views call the typed facade (``gateway.facade``)."""
    assert capabilities, "an operation needs a capability"

    def mark(fn: F) -> F:
        setattr(fn, _OPERATION_ATTR, Operation(fn.__name__, capabilities, write, session))
        return fn

    return mark


def declared(fn: object) -> Operation | None:
    """The declaration of a contract method (``Adapter.loans``), None for anything else."""
    op = getattr(fn, _OPERATION_ATTR, None)
    return op if isinstance(op, Operation) else None


class Adapter:
    """Base of every adapter.  Subclasses set ``family`` and ``capabilities``."""

    family: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[str]] = frozenset()
    #: whether the adapter can re-read its own state after an ambiguous write
    description: ClassVar[str] = ""
    #: the model of the library's ``options``, validated when the adapter is built
    options_model: ClassVar[type[BaseModel]] = AdapterOptions
    #: the secret fields this family posts (see ``SecretFields``; ``secrets()`` may refine
    #: them from the options, e.g. a SOAP mapping names its own elements)
    secret_fields: ClassVar[SecretFields] = SecretFields()
    #: per-patron write locks shared by all gateway processes (a name → a context manager
    #: holding the lock, with a lease), set by the gateway when it runs on Redis; None:
    #: the adapter's own in-process lock.  Names hold card numbers: the lock hashes them.
    patron_lock: Callable[[str], contextlib.AbstractContextManager[Any]] | None = None

    def __init__(self, library: LibraryConfig, *, transport: httpx.BaseTransport | None = None) -> None:
        self.library = library
        self.options: BaseModel = validate_options(self.options_model, library)
        self._transport = transport or _SharedTransport(
            deadline=library.timeout,
            limits=httpx.Limits(max_connections=library.max_concurrency * 2,
                                max_keepalive_connections=library.max_concurrency)
        )
        #: counts upstream HTTP requests (the benchmark and tests read it)
        self.request_count = 0
        self._count_lock = threading.Lock()

    # ------------------------------------------------------------ HTTP helpers
    def client(self, session: UpstreamSession | None = None, **kw: Any) -> httpx.Client:
        """A client for one operation: the shared pool, this patron's cookies."""
        cookies = httpx.Cookies()
        if session is not None:
            for name, value in session.cookies.items():
                cookies.set(name, value)
        return httpx.Client(
            base_url=self.library.base_url,
            transport=self._transport,
            cookies=cookies,
            timeout=httpx.Timeout(self.library.timeout),
            headers={"User-Agent": USER_AGENT},
            follow_redirects=kw.pop("follow_redirects", False),
            event_hooks={"request": [self._count], "response": [self._observed]},
            **kw,
        )

    def secrets(self) -> SecretFields:
        """The secret fields of what this adapter posts (the class's declaration by default)."""
        return self.secret_fields

    def _count(self, request: httpx.Request) -> None:
        with self._count_lock:
            self.request_count += 1
        request.extensions["opacgw_t0"] = time.perf_counter()

    def _observed(self, response: httpx.Response) -> None:
        request = response.request
        t0 = request.extensions.get("opacgw_t0")
        ms = (time.perf_counter() - t0) * 1000 if t0 is not None else 0.0
        for observer in UPSTREAM_OBSERVERS:
            observer(self.library.id, request.method, request.url.path, response.status_code, ms)
        if UPSTREAM_SECRETS:
            for header in response.headers.get_list("set-cookie"):
                value = header.split(";", 1)[0].partition("=")[2].strip().strip('"')
                for keep in UPSTREAM_SECRETS:
                    keep(value)

    @staticmethod
    def keep_cookies(client: httpx.Client, session: UpstreamSession) -> None:
        session.cookies = {c.name: c.value or "" for c in client.cookies.jar}

    def close(self) -> None:
        t = self._transport
        if isinstance(t, _SharedTransport):
            t.really_close()
        else:
            t.close()

    # ------------------------------------------------------------ the contract
    # Sessions
    @operation("login", session=False)
    def login(self, card_number: str, password: str) -> UpstreamSession:
        raise NotSupported(library=self.library.id)

    def logout(self, session: UpstreamSession) -> None:
        return None

    @operation("password_change", write=True, session=None)
    def change_password(
        self, session: UpstreamSession | None, card_number: str | None, current_password: str, new_password: str
    ) -> None:
        """Change the password.  With a session (a logged-in patron) ``card_number`` is None:
        use ``session.card_number``.  Without one (the forced first-login change of a
        temporary/initial password) log in with ``current_password`` and complete the
        forced change.  The gateway has checked the library's policy already."""
        raise NotSupported(library=self.library.id)

    @operation("password_register", write=True, session=False)
    def register_password(self, card_number: str, birth_date: date, new_password: str) -> None:
        raise NotSupported(library=self.library.id)

    # Patron
    @operation("profile")
    def profile(self, session: UpstreamSession) -> Profile:
        raise NotSupported(library=self.library.id)

    @operation("profile_update", write=True)
    def update_profile(self, session: UpstreamSession, changes: ProfileUpdate, password: str | None) -> Profile:
        raise NotSupported(library=self.library.id)

    @operation("loans")
    def loans(self, session: UpstreamSession) -> list[Loan]:
        raise NotSupported(library=self.library.id)

    @operation("renew", write=True)
    def renew(self, session: UpstreamSession, loan_ids: list[str] | None) -> list[RenewalResult]:
        """Renew the given loans (None = all renewable); one result per loan."""
        raise NotSupported(library=self.library.id)

    @operation("holds")
    def holds(self, session: UpstreamSession) -> list[Hold]:
        raise NotSupported(library=self.library.id)

    @operation("hold_place", write=True)
    def place_holds(self, session: UpstreamSession, request: HoldRequest) -> list[HoldResult]:
        raise NotSupported(library=self.library.id)

    @operation("hold_update", write=True)
    def update_hold(self, session: UpstreamSession, hold_id: str, changes: HoldUpdate) -> Hold:
        raise NotSupported(library=self.library.id)

    @operation("hold_cancel", write=True)
    def cancel_hold(self, session: UpstreamSession, hold_id: str) -> None:
        raise NotSupported(library=self.library.id)

    @operation("cart")
    def cart(self, session: UpstreamSession) -> Cart:
        raise NotSupported(library=self.library.id)

    @operation("cart", write=True)
    def cart_add(self, session: UpstreamSession, record_id: str) -> Cart:
        raise NotSupported(library=self.library.id)

    @operation("cart", write=True)
    def cart_remove(self, session: UpstreamSession, record_id: str) -> None:
        raise NotSupported(library=self.library.id)

    @operation("history")
    def history(self, session: UpstreamSession, page: int, per_page: int) -> HistoryPage:
        raise NotSupported(library=self.library.id)

    @operation("messages")
    def messages(self, session: UpstreamSession, include_read: bool) -> list[Message]:
        raise NotSupported(library=self.library.id)

    # Shelves
    @operation("shelves")
    def shelves(self, session: UpstreamSession) -> list[Shelf]:
        raise NotSupported(library=self.library.id)

    @operation("shelves", write=True)
    def create_shelf(self, session: UpstreamSession, name: str) -> Shelf:
        raise NotSupported(library=self.library.id)

    @operation("shelves", write=True)
    def rename_shelf(self, session: UpstreamSession, shelf_id: str, name: str) -> Shelf:
        raise NotSupported(library=self.library.id)

    @operation("shelves", write=True)
    def delete_shelf(self, session: UpstreamSession, shelf_id: str) -> None:
        raise NotSupported(library=self.library.id)

    @operation("shelves")
    def shelf_items(self, session: UpstreamSession, shelf_id: str) -> list[ShelfItem]:
        raise NotSupported(library=self.library.id)

    @operation("shelves", write=True)
    def add_shelf_item(self, session: UpstreamSession, shelf_id: str, record_id: str) -> ShelfItem:
        raise NotSupported(library=self.library.id)

    @operation("shelves", write=True)
    def remove_shelf_item(self, session: UpstreamSession, shelf_id: str, record_id: str) -> None:
        raise NotSupported(library=self.library.id)

    @operation("shelves", write=True)
    def move_shelf_item(
        self, session: UpstreamSession, shelf_id: str, record_id: str, to_shelf_id: str, copy: bool
    ) -> None:
        raise NotSupported(library=self.library.id)

    @operation("shelves")
    def export_shelf(self, session: UpstreamSession, shelf_id: str) -> str:
        """CSV text of the shelf (header row first)."""
        raise NotSupported(library=self.library.id)

    # Alerts (the library's own SDI; gateway-side alerts do not go through adapters)
    @operation("alerts")
    def alerts(self, session: UpstreamSession) -> list[Alert]:
        raise NotSupported(library=self.library.id)

    @operation("alerts", write=True)
    def create_alert(self, session: UpstreamSession, alert: AlertCreate) -> Alert:
        raise NotSupported(library=self.library.id)

    @operation("alerts", write=True)
    def update_alert(self, session: UpstreamSession, alert_id: str, changes: AlertUpdate) -> Alert:
        raise NotSupported(library=self.library.id)

    @operation("alerts", write=True)
    def delete_alert(self, session: UpstreamSession, alert_id: str) -> None:
        raise NotSupported(library=self.library.id)

    # Catalog (no patron session)
    @operation("search", session=False)
    def search(self, query: SearchQuery) -> SearchResult:
        raise NotSupported(library=self.library.id)

    @operation("search", "availability", session=False)
    def record(self, record_id: str) -> Record:
        raise NotSupported(library=self.library.id)

    @operation("availability", session=False)
    def availability(self, isbn: str) -> list[Holding]:
        raise NotSupported(library=self.library.id)

    # Consortium lending
    @operation("lending_request", write=True)
    def create_lending_request(
        self, session: UpstreamSession, record_id: str, pickup_library: str, pickup_branch: str | None
    ) -> UpstreamLending:
        raise NotSupported(library=self.library.id)

    @operation("lending_request")
    def lending_requests(self, session: UpstreamSession) -> list[UpstreamLending]:
        raise NotSupported(library=self.library.id)

    @operation("lending_request", write=True)
    def cancel_lending_request(self, session: UpstreamSession, upstream_id: str) -> None:
        raise NotSupported(library=self.library.id)


def translate_transport_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator for adapter methods: httpx transport failures → typed errors."""
    import functools

    @functools.wraps(fn)
    def wrapper(self: Adapter, *a: Any, **kw: Any) -> Any:
        try:
            return fn(self, *a, **kw)
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"no answer within {self.library.timeout:g} s", library=self.library.id) from exc
        except httpx.TransportError as exc:
            raise UpstreamUnreachable(f"cannot reach the library's system ({type(exc).__name__})",
                                      library=self.library.id) from exc

    return wrapper


def contract() -> dict[str, Operation]:
    """Every declared contract method's name → its declaration (conformance, docs)."""
    return {name: op for name, fn in vars(Adapter).items() if (op := declared(fn)) is not None}


def capability_methods() -> dict[str, list[str]]:
    """capability → the contract methods an adapter declaring it must implement: those
    it gates first (``record`` is gated by search or availability, and belongs to search)."""
    out: dict[str, list[str]] = {}
    for name, op in contract().items():
        out.setdefault(op.capability, []).append(name)
    return out


def overrides(cls: type[Adapter], method: str) -> bool:
    return getattr(cls, method) is not getattr(Adapter, method)


def iter_overridden(cls: type[Adapter]) -> Iterable[str]:
    """The capabilities whose every contract method ``cls`` implements."""
    for cap, methods in capability_methods().items():
        if all(overrides(cls, m) for m in methods):
            yield cap
