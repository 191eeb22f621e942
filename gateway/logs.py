"""Structured logs: one JSON object a line (python-json-logger), for the gateway and every
third-party logger (httpx, httpcore, zeep, urllib3, ...), with the request id.

- Each API request gets a request id (a valid ``X-Request-ID`` is honoured, else one is
  generated; the answer echoes it) and ends in one ``request`` line: method, path, route,
  status, duration, library, and the upstream calls made for it (library, method, path,
  status, milliseconds), also those made in the fan-out's threads.
- A value a client sent (a path with ``%0A``, a header) is a JSON string field, escaped by
  the encoder: no log line can be forged.
- No cookie, password, full card number or token at any level: the handler's filter
  scrubs every record — the gateway's and the libraries' — of the secrets this process
  has been sent (the passwords, card numbers and tokens of the requests, their variants)
  and of anything shaped like one (Cookie / Set-Cookie / Authorization values, session
  cookies, password fields in forms, JSON and XML, card-number fields), before it is
  formatted; the formatted line is scrubbed once more of the known secrets.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import threading
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Any

from cachetools import TTLCache
from pythonjsonlogger.json import JsonFormatter

# ------------------------------------------------------------------ request context
REQUEST_ID_HEADER = "X-Request-ID"
_VALID_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


@dataclass
class RequestLog:
    request_id: str
    upstream: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, call: dict[str, Any]) -> None:
        with self.lock:
            if len(self.upstream) < 200:
                self.upstream.append(call)


CURRENT: contextvars.ContextVar[RequestLog | None] = contextvars.ContextVar("opacgw_request", default=None)


def request_id_from(header: str | None) -> str:
    """The client's X-Request-ID when it is a sane token, else a new one."""
    if header and _VALID_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


class ContextExecutor(ThreadPoolExecutor):
    """A thread pool whose tasks run in the submitter's context (the request id and its
    upstream-call list follow the fan-out into the pool's threads)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        ctx = contextvars.copy_context()
        return super().submit(ctx.run, fn, *args, **kwargs)


def observe_upstream(library: str, method: str, path: str, status: int | None, ms: float) -> None:
    """Record one upstream HTTP exchange against the current request (adapters.base hook)."""
    current = CURRENT.get()
    if current is not None:
        current.add({"library": library, "method": method, "path": path, "status": status,
                     "ms": round(ms, 1)})


# ------------------------------------------------------------------ secrets
# the secrets this process was sent, for a while after (sessions slide for 30 minutes by
# default); matched by one Aho-Corasick automaton (ahocorasick-rs), rebuilt when one is added
_KNOWN: TTLCache[str, str] = TTLCache(maxsize=50_000, ttl=12 * 3600)
_KNOWN_LOCK = threading.Lock()
_automaton: tuple[Any, list[tuple[str, str]]] | None = None
_MIN_SECRET = 3
SECRET_FIELDS = frozenset({"password", "current_password", "new_password", "card_number", "token",
                           "birth_date"})


def _card_variants(raw: str) -> set[str]:
    digits = "".join(ch for ch in unicodedata.normalize("NFKC", raw) if ch.isdigit())
    out = {raw.strip(), digits, digits.lstrip("0")}
    return {v for v in out if len(v) >= 5}


def remember(value: str, kind: str = "secret") -> None:
    """Treat `value` (and, for a card number, its digit forms) as a secret in every log line."""
    global _automaton
    if not isinstance(value, str):
        return
    values = _card_variants(value) if kind == "card_number" else {value}
    with _KNOWN_LOCK:
        for v in values:
            if len(v) >= _MIN_SECRET and v not in _KNOWN:
                _KNOWN[v] = kind
                _automaton = None


def remember_cookie(value: str) -> None:
    """An upstream session cookie's value (adapters.base.UPSTREAM_SECRETS): never logged."""
    if len(value) >= 6:
        remember(value, "cookie")


def remember_body(data: Any) -> None:
    """Remember the secret fields of a JSON body (nested objects and lists too)."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key in SECRET_FIELDS and isinstance(value, str):
                remember(value, "card_number" if key == "card_number" else key)
            else:
                remember_body(value)
    elif isinstance(data, list):
        for item in data:
            remember_body(item)


def _mask(kind: str, text: str) -> str:
    if kind == "card_number":
        return "*" * max(0, len(text) - 4) + text[-4:]
    return "[redacted]"


def _matcher() -> tuple[Any, list[tuple[str, str]]] | None:
    global _automaton
    with _KNOWN_LOCK:
        if _automaton is None and len(_KNOWN):
            import ahocorasick_rs

            forms: dict[str, str] = {}
            for v, kind in list(_KNOWN.items()):
                forms.setdefault(v, kind)
                forms.setdefault(json.dumps(v)[1:-1], kind)  # as it appears inside a JSON string
            entries = list(forms.items())
            _automaton = (ahocorasick_rs.AhoCorasick([f for f, _ in entries],
                                                     matchkind=ahocorasick_rs.MatchKind.LeftmostLongest), entries)
        return _automaton


def _scrub_known(text: str) -> str:
    found = _matcher()
    if found is None:
        return text
    automaton, entries = found
    out, last = [], 0
    for index, start, end in automaton.find_matches_as_indexes(text):
        out.append(text[last:start])
        out.append(_mask(entries[index][1], text[start:end]))
        last = end
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


_Q = r"""["'\\]*"""  # quotes (and the backslashes of escaped quotes) around a key or value
_SEP = rf"({_Q}\s*[:,=]\s*(?:b(?=['\"]))?{_Q})"  # what stands between a key and its value, quotes included
_PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    # Cookie / Set-Cookie / Authorization header values, in any rendering (text, tuples of bytes)
    (re.compile(rf"(?i)((?:set-)?cookie2?|authorization|proxy-authorization|x-api-key){_SEP}"
                r"([^\r\n'\"\\]+)"), lambda m: m.group(1) + m.group(2) + "[redacted]"),
    # session ids wherever they appear (URLs ;jsessionid= and ?hid_session=, cookie jars)
    (re.compile(r"(?i)\b([\w.-]*(?:session|wosid|sessid|sid|ticket)[\w.-]*)"
                r"([=:]\s*)([^;&?#/\s'\"\\<>,]+)"), lambda m: m.group(1) + m.group(2) + "[redacted]"),
    # password and token fields: forms (a=b&), JSON ("a": "b"), keyword args (a='b')
    (re.compile(rf"(?i)([\w.-]*(?:password|passwd|passwort|pwd|secret|token|birth|(?<![a-z])pin(?![a-z]))"
                rf"[\w.-]*){_SEP}([^'\"&\s<>,;}}\]\\]+)"), lambda m: m.group(1) + m.group(2) + "[redacted]"),
    # XML elements named like a password, a card or a session (SOAP bodies, NCIP)
    (re.compile(r"(?i)(<(?:[\w.-]+:)?[\w.-]*(?:password|passwd|pin|card|barcode|patronid|userid|session|ticket|"
                r"token|authenticationinput(?:data)?)[\w.-]*(?:\s[^>]*)?>)([^<]+)(<)"),
     lambda m: m.group(1) + "[redacted]" + m.group(3)),
    # card-number fields of forms and JSON: keep the last four digits
    (re.compile(rf"(?i)([\w.-]*(?:card|barcode|patron|borrower|user_?id|usrid|riyosha)[\w.-]*){_SEP}(\d{{5,}})"),
     lambda m: m.group(1) + m.group(2) + _mask("card_number", m.group(3))),
]


def scrub(text: str) -> str:
    """`text` without the known secrets and without anything shaped like a secret."""
    text = _scrub_known(text)
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


class RedactFilter(logging.Filter):
    """On the handler: every record (any logger) leaves with its message scrubbed."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken %-format must not lose the record
            message = str(record.msg)
        record.msg = scrub(message)
        record.args = None
        if record.exc_info:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        current = CURRENT.get()
        if current is not None and not hasattr(record, "request_id"):
            record.request_id = current.request_id
        return True


class GatewayJsonFormatter(JsonFormatter):
    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s %(message)s",
                         rename_fields={"levelname": "level", "name": "logger", "asctime": "ts"},
                         timestamp="ts", json_ensure_ascii=False)

    def format(self, record: logging.LogRecord) -> str:
        # the extra fields too (paths, upstream calls): the patterns never cross a JSON
        # string's quotes, so the line stays valid JSON
        return scrub(super().format(record))


_installed: list[logging.Handler] = []


def setup(level: str = "INFO", stream: IO[str] | None = None) -> logging.Handler:
    """Root logging as JSON lines on `stream` (stderr), scrubbed, at `level` for the
    gateway; third-party loggers at WARNING unless `level` is DEBUG."""
    root = logging.getLogger()
    for old in _installed:
        root.removeHandler(old)
    _installed.clear()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(GatewayJsonFormatter())
    handler.addFilter(RedactFilter())
    root.addHandler(handler)
    _installed.append(handler)
    lvl = getattr(logging, level.upper(), logging.INFO)
    root.setLevel(lvl)
    quiet = logging.DEBUG if lvl <= logging.DEBUG else logging.WARNING
    for name in ("werkzeug", "httpx", "httpcore", "hpack", "zeep", "urllib3", "requests", "mcp", "sse_starlette"):
        logging.getLogger(name).setLevel(quiet)
    return handler


def install_handler(handler: logging.Handler) -> logging.Handler:
    """Give any handler the gateway's redaction and JSON lines (tests, embedding)."""
    handler.setFormatter(GatewayJsonFormatter())
    handler.addFilter(RedactFilter())
    return handler


def request_line(log: logging.Logger, *, method: str, path: str, route: str | None, status: int,
                 duration_ms: float, library: str | None, client: str | None,
                 current: RequestLog | None) -> None:
    calls = current.upstream if current is not None else []
    log.info("request", extra={
        "request_id": current.request_id if current else None, "method": method, "path": path,
        "route": route, "status": status, "duration_ms": round(duration_ms, 1), "library": library,
        "client": client, "upstream_calls": len(calls),
        "upstream_ms": round(sum(c["ms"] for c in calls), 1), "upstream": calls})


def now() -> float:
    return time.perf_counter()


__all__: Iterable[str] = ["CURRENT", "ContextExecutor", "RequestLog", "observe_upstream", "remember",
                          "remember_body", "request_id_from", "scrub", "setup"]
