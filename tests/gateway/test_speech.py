"""The summary a voice can say: one title at two libraries named with its library, dates
and counts as a person says them, SSML for speech engines."""

from __future__ import annotations

from datetime import date, timedelta

from lxml import etree

from gateway.models import Hold, Loan
from gateway.speech import SSML_NS, en_day, en_list, ja_day, summary_sentences, summary_text, to_ssml
from tests import fakes
from tests.conftest import bearer, login

TODAY = date(2026, 11, 23)  # a Monday
NAMES = {"kumamoto-city": "熊本市立図書館", "kagoshima-pref": "鹿児島県立図書館"}


def loan(library: str, title: str, days: int, i: str = "1") -> Loan:
    return Loan(id=i, library=library, record_id="r" + i, title=title, due_on=TODAY + timedelta(days=days),
                overdue=days < 0, renewable=days >= 0)


def test_the_same_title_at_two_libraries_is_named_with_its_library() -> None:
    overdue = [loan("kagoshima-pref", "悪意", -3, "1"), loan("kumamoto-city", "悪意", -1, "2"),
               loan("kumamoto-city", "サンタクロースっているんでしょうか?", -1, "3")]
    ja = summary_text("ja", TODAY, overdue, [], overdue, [], [], NAMES, NAMES)
    assert "「悪意」（鹿児島県立図書館）、「悪意」（熊本市立図書館）、「サンタクロースっているんでしょうか?」は" in ja
    en = summary_text("en", TODAY, overdue, [], overdue, [], [], NAMES, NAMES)
    assert ("“悪意” from 鹿児島県立図書館, “悪意” from 熊本市立図書館 and “サンタクロースっているんでしょうか?” "
            "are overdue") in en
    # a title held at one library only carries no library name
    assert "（" not in summary_text("ja", TODAY, overdue[2:], [], overdue[2:], [], [], NAMES, NAMES)


def test_due_dates_with_the_library_and_the_day() -> None:
    soon = [loan("kagoshima-pref", "悪意", 0, "1"), loan("kumamoto-city", "悪意", 2, "2")]
    ja = summary_text("ja", TODAY, soon, soon, [], [], [], NAMES, NAMES)
    assert "「悪意」（鹿児島県立図書館、今日まで）、「悪意」（熊本市立図書館、明後日まで）です。" in ja
    en = summary_text("en", TODAY, soon, soon, [], [], [], NAMES, NAMES)
    assert en == ("You have two loans at two libraries. Due in the next three days: “悪意” from 鹿児島県立図書館 "
                  "today and “悪意” from 熊本市立図書館 the day after tomorrow.")


def test_days_and_counts_read_naturally() -> None:
    assert [en_day(TODAY + timedelta(days=d), TODAY) for d in (0, 1, 2, 4, 15)] == [
        "today", "tomorrow", "the day after tomorrow", "on Friday", "on Tuesday 8 December"]
    assert en_day(date(2027, 1, 5), TODAY) == "on Tuesday 5 January 2027"
    assert [ja_day(TODAY + timedelta(days=d), TODAY) for d in (0, 1, 2, 15)] == [
        "今日", "明日", "明後日", "12月8日（火曜日）"]
    assert ja_day(date(2027, 1, 5), TODAY) == "2027年1月5日（火曜日）"
    assert en_list(["a", "b", "c"], 2) == "a, b, c and two more"
    assert en_list(["a", "b", "c"], 20) == "a, b, c and 20 more"
    many = [loan("kumamoto-city", f"本{i}", 10, str(i)) for i in range(13)]
    assert summary_text("en", TODAY, many, [], [], [], [], NAMES, NAMES).startswith(
        "You have 13 loans at 熊本市立図書館.")
    ready = [Hold(id=f"h{i}", library="kumamoto-city", record_id=f"x{i}", title=f"予約{i}", status="ready",
                  pickup_branch="龍田") for i in range(2)]
    en = summary_text("en", TODAY, [], [], [], ready, [], NAMES, NAMES)
    assert en == ("You have no loans right now. Two holds are ready to collect: “予約0” at 龍田 and “予約1” at 龍田.")


def test_ssml_is_a_speak_document_one_sentence_each() -> None:
    overdue = [loan("kagoshima-pref", "<悪意> & 善意", -3)]
    sentences = summary_sentences("ja", TODAY, overdue, [], overdue, [], [], NAMES, NAMES)
    doc = etree.fromstring(to_ssml(sentences, "ja").encode())
    assert doc.tag == f"{{{SSML_NS}}}speak" and doc.get("version") == "1.1"
    assert doc.get("{http://www.w3.org/XML/1998/namespace}lang") == "ja-JP"
    said = [s.text for s in doc.iter(f"{{{SSML_NS}}}s")]
    assert said == sentences and "「<悪意> & 善意」" in said[1]


def test_summary_as_ssml_over_http(client) -> None:
    token = login(client, ("alpha", "12345", fakes.PASSWORD), ("beta", "12345678", fakes.PASSWORD))
    r = client.get("/v1/summary?lang=en&format=ssml", headers=bearer(token))
    assert r.status_code == 200 and r.mimetype == "application/ssml+xml"
    doc = etree.fromstring(r.data)
    assert doc.get("{http://www.w3.org/XML/1998/namespace}lang") == "en-US"
    text = client.get("/v1/summary?lang=en", headers=bearer(token)).get_json()["text"]
    assert " ".join(s.text for s in doc.iter(f"{{{SSML_NS}}}s")) == text
