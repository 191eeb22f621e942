"""Form field names and buttons of the winj portal, and a small shared helper.

Named constants: a renamed field upstream is a one-line fix here.
"""

from __future__ import annotations

from core.errors import GatewayError
from core.models import Problem

# Form field names of the portal.
F_USER = "txt_usercd"
F_PASSWORD = "txt_password"
F_NEW_PASSWORD = "txt_new_password"
F_NEW_PASSWORD2 = "txt_new_password2"
F_RESERVE = "chk_reserve"
F_AREA = "cmb_area"
F_CONTACT = "cmb_contact"
F_BIBID = "bibid"
BTN_OK = ("btn_ok", "OK")
NO_EXPIRY = ("9999", "12", "31")

# The portal's refusal lines of a new password → the API's violation names.
POLICY_LINES = (("文字以上", "min_length"), ("文字以内", "max_length"), ("使用できない文字", "charset"),
                ("アルファベット", "require_letter"), ("数字", "require_digit"))

#: the detailed search (search-detail.do): API field → the cmb_columnN value it is sent as
SEARCH_COLUMNS = (("title", "title"), ("author", "author"), ("publisher", "publisher"))


def problem(err: GatewayError) -> Problem:
    """A typed error as the Problem a per-item result carries."""
    return Problem(**err.to_problem())
