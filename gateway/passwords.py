"""Password changes (PUT /v1/libraries/{id}/password) without Flask: the library's
policy, the change on a session (the vault learns the new password for re-logins), and
the forced first-login change of a temporary password (no session; it logs in with
the current password, so it spends the same failure budget as a login)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.errors import InvalidRequest, PasswordPolicyViolation
from core.policy import check_password
from gateway.auth import normalize_card, throttled_login
from gateway.config import LibraryConfig

if TYPE_CHECKING:
    from gateway.runtime import Gateway


def check_new_password(lib: LibraryConfig, current: str, new: str) -> None:
    """422 password_policy_violation naming each broken rule (and reuse of the current one)."""
    violations = check_password(lib.password_policy, new)
    if new == current:
        violations.append("same_as_current")
    if violations:
        raise PasswordPolicyViolation(
            f"the new password breaks {lib.name}'s rules: {', '.join(violations)}",
            library=lib.id, violations=violations,
        )


def change_in_session(g: Gateway, library: str, current: str, new: str) -> None:
    g.patron(library).change_password(current, new)
    ctx = g.current()
    assert ctx is not None
    g.vault.put(ctx.token_hash, library, new, ctx.record.expires_at.timestamp())


def forced_change(g: Gateway, library: str, card_number: str | None, current: str, new: str,
                  client: str) -> None:
    if not card_number:
        raise InvalidRequest("without a session token, card_number is required",
                             errors=[{"field": "card_number", "message": "required without a token"}])
    card = normalize_card(g.library(library), card_number)
    g.throttle.check_client(client)
    throttled_login(g, library, card, lambda: g.public(library).change_password(card, current, new))
