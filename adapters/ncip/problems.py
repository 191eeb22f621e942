"""NCIP Problems: reading them (message level and inside the response element), what
each ProblemType means for the patron (the vocabularies below are data), and the typed
error for each; card numbers and passwords in a Problem are masked before anything
else sees them.  Also the envelope: ``parse_response`` reads any answer and refuses what
is no NCIP message or not the expected response."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lxml import etree

from adapters.ncip.xml import NcipSyntaxError, message_body, read_message, text
from core.errors import (
    AccountBlocked,
    Conflict,
    InvalidCredentials,
    NotFound,
    NotRenewable,
    SessionExpired,
    UpstreamChanged,
    UpstreamError,
)
from mappers.cards import mask_card_number
from mappers.status import renewal_reason as ja_renewal_reason

# ------------------------------------------------------------------ vocabularies (data)
#: ProblemType (lower-cased) → what it means for the patron
AUTH_PROBLEMS = frozenset({
    "unknown user", "user authentication failed", "invalid user", "user not found",
    "authentication failed", "invalid password", "invalid pin",
})
NOT_FOUND_PROBLEMS = frozenset({
    "unknown item", "unknown request", "unknown bibliographic record", "unknown bibliographic item",
    "item not found", "request not found", "unknown record", "no such item",
})
BLOCKED_PROBLEMS = frozenset({
    "user blocked", "user ineligible to request this item", "user ineligible to check out this item",
    "user ineligible to renew this item", "user privilege expired", "user delinquent",
})
#: refusals that are a conflict with the request's current state (API 409 conflict)
CONFLICT_PROBLEMS = frozenset({
    "duplicate request", "request not cancellable", "request already processed", "item already requested",
    "user already has item", "item request already exists",
})
#: words in a cancel refusal's ProblemValue/Detail meaning "it is cancelled already" → 404
ALREADY_CANCELLED_WORDS = ("cancelled", "canceled", "取消", "取り消し済", "キャンセル済")
#: renewal refusals → NotRenewable reason (None: decide from ProblemDetail)
RENEWAL_PROBLEMS: dict[str, str | None] = {
    "item not renewable": None,
    "maximum renewals exceeded": "renewal_limit",
    "renewal limit exceeded": "renewal_limit",
    "item has outstanding requests": "reserved",
    "renewal not allowed - item has outstanding requests": "reserved",
    "item overdue": "overdue",
    "item is overdue": "overdue",
    "item already renewed": "already_renewed",
    "renewal too early": "not_yet",
}
#: English words in a ProblemDetail (or Japanese via mappers.status) → reason
_DETAIL_REASONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("overdue", "past due"), "overdue"),
    (("outstanding request", "reserved", "on hold", "hold queue", "requested by"), "reserved"),
    (("maximum", "limit", "too many renewals"), "renewal_limit"),
    (("already renewed",), "already_renewed"),
    (("too early", "too soon", "not yet"), "not_yet"),
)


def norm(word: str | None) -> str:
    return " ".join((word or "").lower().split())


#: ProblemElement names (last path segment, lower-cased prefix) whose ProblemValue is a
#: patron's card number: masked to the last 4 characters before it goes anywhere.
CARD_ELEMENT_PREFIXES = ("user",)
#: ... and whose value may be a password: dropped altogether.
SECRET_ELEMENT_PREFIXES = ("authentication", "password", "pin")


# ------------------------------------------------------------------ problems
@dataclass(frozen=True)
class NcipProblem:
    type: str | None
    detail: str | None = None
    element: str | None = None
    value: str | None = None

    def redacted(self) -> NcipProblem:
        """This Problem with a card number / password in ProblemValue masked or dropped
        (also where the responder repeats the value in ProblemDetail, "no user 52")."""
        last = re.split(r"[/.:]", self.element or "")[-1].lower()
        if not self.value:
            return self
        if last.startswith(SECRET_ELEMENT_PREFIXES):
            safe = None
        elif last.startswith(CARD_ELEMENT_PREFIXES):
            safe = mask_card_number(self.value)
        else:
            return self
        detail = self.detail.replace(self.value, safe or "***") if self.detail else self.detail
        return NcipProblem(self.type, detail, self.element, safe)

    def fields(self) -> dict[str, Any]:
        """The Problem's elements for an error body; never a full card number or a password."""
        p = self.redacted()
        return {"ProblemType": p.type, "ProblemDetail": p.detail,
                "ProblemElement": p.element, "ProblemValue": p.value}

    def describe(self) -> str:
        p = self.redacted()
        return "; ".join(x for x in (p.type, p.detail) if x) or "NCIP Problem without a type"


def parse_problem(el: etree._Element) -> NcipProblem:
    return NcipProblem(text(el, "ProblemType"), text(el, "ProblemDetail"),
                       text(el, "ProblemElement"), text(el, "ProblemValue"))


def problems(root: etree._Element) -> list[NcipProblem]:
    """Problems at message level and directly inside the response element."""
    found = [parse_problem(p) for p in root.findall("Problem")]
    body = message_body(root)
    if body is not None:
        found += [parse_problem(p) for p in body.findall("Problem")]
    return found


def renewal_reason(problem: NcipProblem) -> str:
    reason = RENEWAL_PROBLEMS.get(norm(problem.type))
    if reason:
        return reason
    detail = norm(problem.detail)
    for words, r in _DETAIL_REASONS:
        if any(w in detail for w in words):
            return r
    if problem.detail:  # Japanese upstream text (a Japanese ILS behind the NCIP responder)
        return ja_renewal_reason(problem.detail)
    return "other"


def problem_error(problem: NcipProblem, *, context: str, library: str | None = None) -> Exception:
    """The typed error for a Problem.  ``context``: login, session (any call made with a
    logged-in patron's UserId), renew, or public (no patron)."""
    problem = problem.redacted()  # a card number in the value/detail never reaches an error body
    kind = norm(problem.type)
    msg = problem.detail or problem.type or "NCIP Problem"
    if kind in AUTH_PROBLEMS:
        if context == "login":
            return InvalidCredentials(library=library, upstream_message=problem.detail)
        if context in ("session", "renew"):
            return SessionExpired(problem.describe())
    if kind in RENEWAL_PROBLEMS or (context == "renew" and "renew" in kind):
        return NotRenewable(msg, reason=renewal_reason(problem), library=library,
                            upstream_message=problem.detail or problem.type, **problem.fields())
    if kind in NOT_FOUND_PROBLEMS:
        return NotFound(msg, library=library, **problem.fields())
    if kind in CONFLICT_PROBLEMS:
        return Conflict(msg, library=library, upstream_message=problem.detail, **problem.fields())
    if kind in BLOCKED_PROBLEMS:
        detail = norm(problem.detail)
        reason = "overdue" if "overdue" in detail else "fines" if ("fine" in detail or "fee" in detail) else "blocked"
        return AccountBlocked(msg, reason=reason, library=library, upstream_message=problem.detail, **problem.fields())
    return UpstreamError(f"the NCIP responder reported a Problem: {problem.describe()}", library=library,
                         **problem.fields())


# ------------------------------------------------------------------ envelope
@dataclass
class Response:
    root: etree._Element
    body: etree._Element | None
    problems: list[NcipProblem]

    @property
    def kind(self) -> str | None:
        return None if self.body is None else str(self.body.tag)


def parse_response(raw: bytes | str, expected: str | None = None, *, library: str | None = None) -> Response:
    """Read an answer; UpstreamChanged when it is no NCIP message or of the wrong type."""
    try:
        root = read_message(raw)
    except NcipSyntaxError as exc:
        raise UpstreamChanged(f"the NCIP responder's answer is not an NCIP message ({exc})", library=library) from None
    body = message_body(root)
    resp = Response(root, body, problems(root))
    if body is not None and expected and body.tag != expected and not resp.problems:
        raise UpstreamChanged(f"expected {expected}, got {body.tag}", library=library)
    if body is None and not resp.problems:
        raise UpstreamChanged("the NCIP responder answered with an empty NCIPMessage", library=library)
    return resp


def raise_for_problems(resp: Response, *, context: str, library: str | None = None) -> None:
    if resp.problems:
        err = problem_error(resp.problems[0], context=context, library=library)
        raise err


def already_cancelled(problem: NcipProblem) -> bool:
    """A "not cancellable" refusal because the request is cancelled already."""
    if norm(problem.type) not in CONFLICT_PROBLEMS:
        return False
    said = f"{norm(problem.value)} {norm(problem.detail)}"
    return any(w in said for w in ALREADY_CANCELLED_WORDS)
