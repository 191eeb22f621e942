"""Secrets never leave: no demo password, full card number, session cookie or hidden
session token in the cassettes of recorded/ or the saved pages of fixtures/*/pages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fixtures.registry import demo_accounts

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted(p for d in [ROOT / "recorded", *ROOT.glob("fixtures/*/pages")] if d.exists()
               for p in d.rglob("*") if p.is_file())

PATTERNS = [
    re.compile(r"txt_password=[^&\"'\s*]{2,}"),          # a password field left in a form body
    re.compile(r"JSESSIONID=(?!\*|SCRUBBED|x+\b)[0-9A-Za-z]{12,}"),  # a live session cookie
    re.compile(r"hid_session[\"']?\s*(?:=|value=[\"']?)(?!\*|SCRUBBED)[0-9A-Za-z]{12,}"),
    re.compile(r"\"password\"\s*:\s*\"(?!\*|SCRUBBED)[^\"]+\""),
    re.compile(r"(?i)authorization:\s*(?:basic|bearer)\s+(?!\*|SCRUBBED)[A-Za-z0-9+/=._-]{8,}"),
]


def _record_ids() -> set[str]:
    from fixtures.catalog import load_records

    return {r.id for r in load_records()}


def _secrets() -> tuple[list[str], list[str], list[str]]:
    """(secrets that must not appear anywhere, card numbers and passwords that only count
    in a card or password context: short ones like "0808" or "52" also occur as dates,
    counts and ids, and Yamaguchi's demo cards look like the sample set's record ids)."""
    anywhere, cards, passwords = set(), set(), set()
    ids = _record_ids()
    for accounts in demo_accounts().values():
        for card, password, _ in accounts:
            if len(card) >= 8 and card not in ids:
                anywhere.add(card)
            else:
                cards.add(card.lstrip("0") or card)
            if password.startswith("("):
                continue  # "(none yet)"
            (anywhere if len(password) >= 6 else passwords).add(password)
    return sorted(anywhere), sorted(cards), sorted(passwords)


CARD_CONTEXT = (r"(?i)(?:usercd|card|user_?id|useridentifiervalue|authenticationinputdata|patron|login|riyosha)"
                r"[\"'>:= ]{1,4}0*")
PASSWORD_CONTEXT = r"(?i)(?:password|passwd|pin|authenticationinputdata)[\"'>:= ]{1,4}"


def test_there_is_something_to_check() -> None:
    assert FILES, "no cassettes or saved pages found"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_file_holds_no_secret(path: Path) -> None:
    text = path.read_bytes().decode("utf-8", errors="replace")
    for pattern in PATTERNS:
        m = pattern.search(text)
        assert m is None, f"{pattern.pattern} matched {m.group(0)[:40]!r}"
    anywhere, cards, passwords = _secrets()
    for secret in anywhere:
        assert secret not in text, f"a demo secret ending …{secret[-4:]} is in the file"
    for card in cards:
        m = re.search(CARD_CONTEXT + re.escape(card) + r"(?![0-9])", text)
        assert m is None, f"a demo card number ending …{card[-4:]} is in the file: {m.group(0)[:50]!r}"
    for password in passwords:
        m = re.search(PASSWORD_CONTEXT + re.escape(password) + r"(?![0-9A-Za-z])", text)
        assert m is None, f"a short demo password is in the file: {m.group(0)[:30]!r}"
