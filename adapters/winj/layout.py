"""What one winj portal looks like: the per-library variation of the family, as data.

Real ``/winj/opac/`` sites are one web application with per-site settings
(``../shared/docs/REAL_WINJ.md``): the context path, the due-date label, the date
format, the width of the colons, how a hold's rank is written, the page size,
where the 【図書】 material type sits, the login button's caption, whether the
basket asks for an expiry date or a 「期限なし」 box, whether the confirm screen
offers an e-mail select.  A library's configuration describes its portal in
``[libraries.<id>.options.portal]``; the simulator renders from it and the adapter
reads it as its first guess (it still accepts every variant, so a site that differs
from its configuration keeps working).  The context path itself is the path of
``base_url`` (``/winj/opac``, ``/kento/opac``, ``/opac``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: every due-date label seen on real sites (REAL_WINJ.md §4)
DUE_LABELS = ("返却期限日", "返却予定日", "返却期限")


class PortalLayout(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: 返却期限: / 返却予定日: / 返却期限日: (half-width colon, as every real site)
    due_label: Literal["返却期限", "返却予定日", "返却期限日"] = "返却予定日"
    #: dates as YYYY/MM/DD or YYYY.MM.DD ...
    date_sep: Literal["/", "."] = "/"
    #: ... with or without leading zeros in month and day
    date_pad: bool = True
    #: the colon after 予約状態 / 順番 (full-width at 神戸; 貸出日: is always half-width)
    status_colon: Literal[":", "："] = ":"
    #: a waiting hold's rank: "(3位)", "順番：3" or "予約中(3位)"
    rank_format: Literal["paren", "junban", "yoyakuchu"] = "paren"
    #: rows per list page before the patron changes it (the real default is 10)
    page_size: int = Field(default=10, ge=1, le=100)
    #: 【図書】 inside span.title's text, or a sibling <b> before the title
    type_prefix: Literal["inside", "sibling"] = "inside"
    #: the charset pages are served in (real sites: UTF-8)
    charset: str = "UTF-8"
    #: the server answers /winj//opac/login.do as /winj/opac/login.do (愛知)
    double_slash: bool = False
    #: a first GET of login.do without a session lands on the top page (千代田/渋谷)
    cold_login: Literal["form", "top"] = "form"
    login_button: str = "ログイン"
    #: the basket's hold expiry: a year/month/day triple or a 「期限なし」 checkbox
    expiry: Literal["triple", "chk_limit"] = "triple"
    #: the reservation confirm screen has an e-mail select (cmb_email)
    confirm_email: bool = False
    reserve_button: str = "通常予約する"
    confirm_button: str = "予約する"

    def fmt_date(self, d: Any) -> str:
        if self.date_pad:
            return f"{d.year:04d}{self.date_sep}{d.month:02d}{self.date_sep}{d.day:02d}"
        return f"{d.year}{self.date_sep}{d.month}{self.date_sep}{d.day}"


class WinjOptions(BaseModel):
    """``[libraries.<id>.options]`` of a winj library, validated when the adapter is built
    (``Adapter.options_model``): a misspelt layout key is a configuration error."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: what the portal looks like (see ``PortalLayout``)
    portal: PortalLayout = PortalLayout()
    #: tick 申請確認メールを送信する on a profile change
    profile_confirm_mail: bool = False


def layout_of(options: Any) -> PortalLayout:
    """The portal layout of a library's ``options`` (defaults where not configured)."""
    if isinstance(options, WinjOptions):
        return options.portal
    raw = options.get("portal") if isinstance(options, dict) else None
    return PortalLayout.model_validate(raw or {})


def context_paths(base_url: str) -> tuple[str, str]:
    """(module path, context root) of a base URL: ``http://h/kento/opac`` → ("/kento/opac",
    "/kento"); ``http://h/opac`` → ("/opac", "")."""
    from urllib.parse import urlsplit

    path = "/" + "/".join(p for p in urlsplit(base_url).path.split("/") if p)
    if path == "/":
        path = "/opac"
    root = path[: -len("/opac")] if path.endswith("/opac") else path.rsplit("/", 1)[0]
    return path, root
