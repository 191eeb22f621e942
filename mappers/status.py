"""Japanese status words → the API's enumerations.

Hold status (予約状況), holding status (所蔵の状態) and the reason a renewal
(貸出延長) was refused.  An unknown hold word is a MappingError — the adapter turns it
into UpstreamChanged, since a new status word means the upstream screen changed.
"""

from __future__ import annotations

import unicodedata

from mappers import MappingError

__all__ = ["HOLDING_WORDS", "HOLD_WORDS", "hold_status", "holding_status", "renewal_reason"]

HOLD_WORDS: dict[str, str] = {
    "申込中": "submitted",
    "受付中": "submitted",
    "予約中": "waiting",
    "順番待ち": "waiting",
    "返却待ち": "waiting",  # 神戸, 市川 (REAL_WINJ.md §6)
    "確認待ち": "waiting",
    "予約申込": "submitted",
    "待ち": "waiting",
    "準備中": "in_transit",
    "回送中": "in_transit",
    "他館確保": "in_transit",
    "搬送中": "in_transit",
    "配送中": "in_transit",
    "手配中": "in_transit",
    "発注中": "in_transit",
    "対応中": "in_transit",
    "受取館へ回送中": "in_transit",
    "回送待ち": "in_transit",
    "利用可能": "ready",
    "貸出可能": "ready",  # 千代田/渋谷: a hold that is ready
    "取置中": "ready",
    "取置き中": "ready",
    "取り置き中": "ready",
    "ご用意できました": "ready",
    "受取可": "ready",
    "受取可能": "ready",
    "取置済": "ready",
    "連絡済": "ready",
    "期限切れ": "expired",
    "取置期限切れ": "expired",
    "期限切": "expired",
    "取消": "cancelled",
    "取消し": "cancelled",
    "取り消し": "cancelled",
    "キャンセル": "cancelled",
    "予約取消": "cancelled",
    "取消済": "cancelled",
}

HOLDING_WORDS: dict[str, str] = {
    "貸出可": "available",
    "貸出可能": "available",
    "在架": "available",
    "利用可": "available",
    "貸出中": "on_loan",
    "館内のみ": "in_library_only",
    "禁帯出": "in_library_only",
    "館内閲覧のみ": "in_library_only",
    "予約中": "reserved",
    "予約あり": "reserved",
    "準備中": "in_preparation",
    "整理中": "in_preparation",
    "休館中": "closed",
    "行方不明": "missing",
    "不明": "missing",
}


def _key(word: str) -> str:
    # Pages pad cells with full-width spaces and sometimes wrap words in brackets.
    s = unicodedata.normalize("NFKC", word)
    return "".join(s.split()).strip("[]()【】「」")


def hold_status(word: str) -> str:
    """submitted / waiting / in_transit / ready / expired / cancelled; else MappingError."""
    key = _key(word)
    try:
        return HOLD_WORDS[key]
    except KeyError:
        raise MappingError(f"unknown hold status word: {word!r}") from None


def holding_status(word: str) -> str:
    """available / on_loan / in_library_only / reserved / in_preparation / closed /
    missing, or "unknown"."""
    return HOLDING_WORDS.get(_key(word), "unknown")


# Order matters: a message may mention 予約 while saying the loan is overdue.
_RENEWAL_RULES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("延滞", "返却期限を過ぎ", "期限切れ", "期限を過ぎ"), "overdue"),
    (("延長済", "既に延長", "すでに延長", "延長されています"), "already_renewed"),
    (("回数",), "renewal_limit"),
    (("予約",), "reserved"),
)


def renewal_reason(text: str) -> str:
    """overdue / reserved / already_renewed / renewal_limit / other."""
    s = unicodedata.normalize("NFKC", text or "")
    for needles, reason in _RENEWAL_RULES:
        if any(n in s for n in needles):
            return reason
    return "other"
