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
F_LEND = "chk_lend"
F_RESERVE = "chk_reserve"
F_BASKET = "chk_basket"
F_AREA = "cmb_area"
F_CONTACT = "cmb_contact"
F_YEAR, F_MONTH, F_DAY = "txt_year", "txt_month", "txt_day"
F_BIBID = "bibid"
BTN_NORMAL = ("btn_reserve", "通常予約")
BTN_ORDERED = ("btn_bulk", "まとめて予約")
BTN_OK = ("btn_ok", "OK")
BTN_BASKET = ("btn_basket", "予約かごへ")
BTN_DELETE = ("btn_delete", "削除")
NO_EXPIRY = ("9999", "12", "31")

# The portal's refusal lines of a new password → the API's violation names.
POLICY_LINES = (("文字以上", "min_length"), ("文字以内", "max_length"), ("使用できない文字", "charset"),
                ("アルファベット", "require_letter"), ("数字", "require_digit"))

SEARCH_FIELDS = (("q", "txt_word"), ("title", "txt_title"), ("author", "txt_author"),
                 ("publisher", "txt_publisher"), ("isbn", "txt_isbn"))


def problem(err: GatewayError) -> Problem:
    """A typed error as the Problem a per-item result carries."""
    return Problem(**err.to_problem())
