"""Password policy checks, done before any upstream call (422 password_policy_violation)."""

from __future__ import annotations

import string

from core.config import PasswordPolicy

_SYMBOLS = set(string.punctuation)


def check_password(policy: PasswordPolicy, password: str) -> list[str]:
    """The list of violated rules (empty = acceptable).

    Rule names: min_length, max_length, charset, require_letter, require_digit.
    Only half-width ASCII counts as a digit or letter: the portals reject full-width.
    """
    violations: list[str] = []
    if len(password) < policy.min_length:
        violations.append("min_length")
    if len(password) > policy.max_length:
        violations.append("max_length")
    digits = set(string.digits)
    letters = set(string.ascii_letters)
    allowed = digits
    if policy.charset in ("alnum", "alnum_symbols"):
        allowed = allowed | letters
    if policy.charset == "alnum_symbols":
        allowed = allowed | _SYMBOLS
    if any(ch not in allowed for ch in password):
        violations.append("charset")
    if policy.require_letter and not any(ch in letters for ch in password):
        violations.append("require_letter")
    if policy.require_digit and not any(ch in digits for ch in password):
        violations.append("require_digit")
    return violations
