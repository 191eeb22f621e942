"""``POST /v1/libraries/{library}/password-registrations``: first password for a card.

Libraries such as 山口県立山口図書館 issue cards without a password; the patron
registers one with the card number and birth date.  The library's password policy
is checked here, before any upstream call, so a bad password never costs a round
trip (the simulated portal enforces it again).
"""

from __future__ import annotations

from flask import Blueprint, Response

from adapters.base import Adapter
from core.errors import PasswordPolicyViolation
from core.policy import check_password
from gateway.http import body, json_response, spec
from gateway.models import PasswordRegistration
from gateway.api_sessions import client_identity
from gateway.auth import throttled_login
from gateway.runtime import gw, mask, normalize_card

bp = Blueprint("registration", __name__)


@bp.post("/v1/libraries/<library>/password-registrations")
@spec(body=PasswordRegistration, status=201, auth="client",
      summary="Register the first password of a card (card number + birth date)")
def register(library: str) -> Response:
    lib = gw().library(library)
    reg = body(PasswordRegistration)  # bad input is a 400 first, whatever the library offers
    gw().require(library, Adapter.register_password, f"{lib.name} does not register passwords through its system")
    violations = check_password(lib.password_policy, reg.new_password)
    if violations:
        p = lib.password_policy
        raise PasswordPolicyViolation(
            f"{lib.name} needs {p.min_length}–{p.max_length} characters ({p.charset})",
            library=library, violations=violations,
        )
    card = normalize_card(lib, reg.card_number)
    # card number + birth date is a password too: the same budgets as a login
    gw().throttle.check_client(client_identity())
    throttled_login(gw(), library, card,
                    lambda: gw().public(library).register_password(card, reg.birth_date, reg.new_password))
    return json_response({"library": library, "card_number_masked": mask(card), "registered": True}, status=201)
