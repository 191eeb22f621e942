"""The summary a voice can say (GET /v1/summary): short sentences in Japanese or English,
pure functions of the lists (tested directly), as plain text or as SSML.

- The same title at two libraries is named with its library: 「悪意」（鹿児島県立図書館）,
  “悪意” from 鹿児島県立図書館.
- Dates read as a person says them: 今日, 明日, 明後日, 12月8日（火曜日） / today,
  tomorrow, the day after tomorrow, on Friday (within the week), on Tuesday 8 December.
- Counts: Japanese counters (3冊, 2館, 1件); English number words up to twelve
  ("one loan", "two libraries"), digits above.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from lxml import etree

MAX_NAMED = 3
DUE_SOON_DAYS = 3

_EN_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_EN_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
              "October", "November", "December"]
_EN_NUMBERS = ["no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
               "twelve"]
_JA_DAYS = "月火水木金土日"
SSML_NS = "http://www.w3.org/2001/10/synthesis"
XML_NS = "http://www.w3.org/XML/1998/namespace"


def en_number(n: int) -> str:
    return _EN_NUMBERS[n] if 0 <= n < len(_EN_NUMBERS) else str(n)


def en_count(n: int, one: str, many: str) -> str:
    return f"{en_number(n)} {one if n == 1 else many}"


def en_day(d: date, today: date) -> str:
    """'today', 'tomorrow', 'the day after tomorrow', 'on Friday', 'on Tuesday 8 December'."""
    delta = (d - today).days
    if delta == 0:
        return "today"
    if delta == 1:
        return "tomorrow"
    if delta == 2:
        return "the day after tomorrow"
    if 2 < delta < 7:
        return f"on {_EN_DAYS[d.weekday()]}"
    year = f" {d.year}" if d.year != today.year else ""
    return f"on {_EN_DAYS[d.weekday()]} {d.day} {_EN_MONTHS[d.month - 1]}{year}"


def ja_day(d: date, today: date) -> str:
    """'今日', '明日', '明後日', '12月8日（火曜日）'."""
    delta = (d - today).days
    if delta == 0:
        return "今日"
    if delta == 1:
        return "明日"
    if delta == 2:
        return "明後日"
    year = f"{d.year}年" if d.year != today.year else ""
    return f"{year}{d.month}月{d.day}日（{_JA_DAYS[d.weekday()]}曜日）"


def en_list(parts: Sequence[str], more: int = 0) -> str:
    """"a", "a and b", "a, b and c"; with more: "a, b, c and two more"."""
    items = [*parts, f"{en_number(more)} more"] if more else list(parts)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _ambiguous(items: Sequence[Any]) -> set[str]:
    """Titles that belong to more than one library among `items`."""
    libs: dict[str, set[str]] = {}
    for item in items:
        libs.setdefault(item.title, set()).add(item.library)
    return {title for title, where in libs.items() if len(where) > 1}


def summary_sentences(lang: str, today: date, loans: list[Any], due_soon: list[Any], overdue: list[Any],
                      ready: list[Any], failed: list[str], names: dict[str, str],
                      short: dict[str, str]) -> list[str]:
    """The summary as sentences (each one complete, to be read as is)."""
    libs = {l.library for l in loans}
    twice = _ambiguous([*loans, *ready])
    extra = max(0, len(overdue) - MAX_NAMED), max(0, len(due_soon) - MAX_NAMED), max(0, len(ready) - MAX_NAMED)
    out: list[str] = []
    if lang == "ja":
        def title(item: Any, *notes: str) -> str:
            parts = ([names.get(item.library, item.library)] if item.title in twice else []) + [n for n in notes if n]
            return f"「{item.title}」" + (f"（{'、'.join(parts)}）" if parts else "")

        if not loans:
            out.append("いま借りている資料はありません。")
        elif len(libs) > 1:
            out.append(f"いま{len(libs)}館で合わせて{len(loans)}冊借りています。")
        else:
            out.append(f"いま{names[next(iter(libs))]}で{len(loans)}冊借りています。")
        if overdue:
            items = "、".join(title(l) for l in overdue[:MAX_NAMED])
            more = f"など{len(overdue)}冊" if extra[0] else ""
            out.append(f"{items}{more}は返却期限を過ぎています。早めに返却してください。")
        if due_soon:
            items = "、".join(title(l, f"{ja_day(l.due_on, today)}まで") for l in due_soon[:MAX_NAMED])
            more = f"など{len(due_soon)}冊" if extra[1] else ""
            out.append(f"{DUE_SOON_DAYS}日以内に返却期限が来るのは{items}{more}です。")
        elif loans and not overdue:
            out.append(f"{DUE_SOON_DAYS}日以内に返却期限が来る資料はありません。")
        if ready:
            items = "、".join(title(h, h.pickup_branch or short.get(h.library, h.library)) for h in ready[:MAX_NAMED])
            more = f"など{len(ready)}件" if extra[2] else ""
            out.append(f"予約の{items}{more}が受け取れます。")
        if failed:
            out.append("、".join(names.get(f, f) for f in failed) + "には今つながりませんでした。")
        return out

    def en_title(item: Any) -> str:
        return f"“{item.title}”" + (f" from {names.get(item.library, item.library)}" if item.title in twice else "")

    if not loans:
        out.append("You have no loans right now.")
    elif len(libs) > 1:
        out.append(f"You have {en_count(len(loans), 'loan', 'loans')} at {en_count(len(libs), 'library', 'libraries')}.")
    else:
        out.append(f"You have {en_count(len(loans), 'loan', 'loans')} at {names[next(iter(libs))]}.")
    if overdue:
        titles = en_list([en_title(l) for l in overdue[:MAX_NAMED]], extra[0])
        one = len(overdue) == 1
        out.append(f"{titles} {'is' if one else 'are'} overdue; please return {'it' if one else 'them'} soon.")
    if due_soon:
        if len(due_soon) == 1:
            out.append(f"{en_title(due_soon[0])} is due {en_day(due_soon[0].due_on, today)}.")
        else:
            parts = [f"{en_title(l)} {en_day(l.due_on, today)}" for l in due_soon[:MAX_NAMED]]
            out.append(f"Due in the next {en_number(DUE_SOON_DAYS)} days: {en_list(parts, extra[1])}.")
    elif loans and not overdue:
        out.append(f"Nothing is due in the next {en_number(DUE_SOON_DAYS)} days.")
    if ready:
        parts = [f"{en_title(h)} at {h.pickup_branch or short.get(h.library, h.library)}" for h in ready[:MAX_NAMED]]
        if len(ready) == 1:
            out.append(f"Ready to collect: {parts[0]}.")
        else:
            out.append(f"{en_count(len(ready), 'hold', 'holds').capitalize()} are ready to collect: "
                       f"{en_list(parts, extra[2])}.")
    if failed:
        out.append(f"I couldn't reach {en_list([names.get(f, f) for f in failed])} just now.")
    return out


def summary_text(lang: str, today: date, loans: list[Any], due_soon: list[Any], overdue: list[Any],
                 ready: list[Any], failed: list[str], names: dict[str, str], short: dict[str, str]) -> str:
    """One short paragraph a voice assistant can read as is."""
    sentences = summary_sentences(lang, today, loans, due_soon, overdue, ready, failed, names, short)
    return ("" if lang == "ja" else " ").join(sentences)


def to_ssml(sentences: Sequence[str], lang: str) -> str:
    """An SSML 1.1 document: one <s> per sentence in a <p>, the language on <speak>."""
    speak = etree.Element(f"{{{SSML_NS}}}speak", nsmap={None: SSML_NS})
    speak.set("version", "1.1")
    speak.set(f"{{{XML_NS}}}lang", "ja-JP" if lang == "ja" else "en-US")
    para = etree.SubElement(speak, f"{{{SSML_NS}}}p")
    for sentence in sentences:
        etree.SubElement(para, f"{{{SSML_NS}}}s").text = sentence
    return etree.tostring(speak, xml_declaration=True, encoding="UTF-8").decode("utf-8")
