"""The shared bibliographic sample set (fixtures/catalog)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from fixtures.catalog import (
    STATUS_WORDS,
    CatalogRecord,
    branches_of,
    get_record,
    holdings,
    load_records,
    search,
    volumes_of,
)
from fixtures.catalog.generate import build, isbn13
from mappers.bibline import parse_bibline
from mappers.status import holding_status

LIBRARIES = ["kumamoto-city", "kagoshima-pref", "amami", "niigata-city", "yamaguchi-pref",
             "ncip-consortium", "soap-demo", "soap-second", "soap-kita"]
KATAKANA = re.compile(r"^[\u30a0-\u30ffー A-Za-z0-9;]+$")


def isbn_ok(isbn: str) -> bool:
    return len(isbn) == 13 and isbn.isdigit() and isbn13(isbn[:12]) == isbn


def test_size_and_ids() -> None:
    records = load_records()
    assert 300 <= len(records) <= 400
    ids = [r.id for r in records]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"\d{10}", i) for i in ids)
    assert ids == sorted(ids)


@pytest.mark.parametrize(
    ("rid", "title", "author", "publisher", "year", "cls"),
    [
        ("1000000001", "アンパンマンのサンタクロース", "やなせ たかし / 作・絵", "フレーベル館", "1981.11", "E"),
        ("1000000002", "赤松小三郎ともう一つの明治維新", "関 良基 / 著", "作品社", "2016.12", "289.1"),
        ("1000000003", "悪意", "東野 圭吾 / 著", "双葉社", "1996.9", "913.6"),
    ],
)
def test_seed_records(rid: str, title: str, author: str, publisher: str, year: str, cls: str) -> None:
    r = get_record(rid)
    assert r is not None
    assert (r.title, r.author, r.publisher, r.year, r.classification) == (title, author, publisher, year, cls)
    # The line the seed's WebOPAC printed round-trips through the mapper.
    assert parse_bibline(r.bibline, title=r.title).publisher == publisher


def test_seed_bibline_exact() -> None:
    r = get_record("1000000002")
    assert r is not None and r.bibline == "関 良基 / 著 -- 作品社 -- 2016.12 -- 289.1"


def test_santa_claus_pages() -> None:
    hits = search(title="サンタクロース")
    assert len(hits) > 40  # several pages of 10–20
    assert get_record("1000000001") in hits
    # Kana- and width-insensitive.
    assert len(search(title="さんたくろーす")) == len(hits)
    assert len(search(title="ｻﾝﾀｸﾛｰｽ")) == len(hits)


def test_search_fields() -> None:
    assert [r.id for r in search(author="東野 圭吾", title="悪意")] == ["1000000003", "1000000010"]
    assert search(publisher="作品社")[0].id == "1000000002"
    assert len(search(subject="鹿児島県")) > 5
    r = get_record("1000000002")
    assert r is not None and r.isbn is not None
    assert search(isbn=r.isbn) == [r]
    assert search(isbn=f"{r.isbn[:3]}-{r.isbn[3]}-{r.isbn[4:9]}-{r.isbn[9:12]}-{r.isbn[12]}") == [r]
    assert search(q="明治維新 作品社") == [r]


def test_isbn_check_digits_valid_and_unique() -> None:
    isbns = [r.isbn for r in load_records() if r.isbn is not None]
    assert len(isbns) > 300
    assert all(isbn_ok(i) for i in isbns)
    assert all(i.startswith("9784") for i in isbns)
    assert len(set(isbns)) == len(isbns)


def test_readings_are_katakana() -> None:
    for r in load_records():
        assert KATAKANA.match(r.title_kana), (r.id, r.title_kana)
        assert KATAKANA.match(r.publisher_kana), (r.id, r.publisher_kana)
        if r.author_kana:
            assert KATAKANA.match(r.author_kana), (r.id, r.author_kana)


def test_fields_realistic() -> None:
    records = load_records()
    classes = Counter(r.classification for r in records)
    assert classes["E"] > 50 and classes["913.6"] > 50
    for r in records:
        assert isinstance(r, CatalogRecord)
        assert re.fullmatch(r"\d{4}\.\d{1,2}", r.year), r.year
        assert 1900 < r.published_year < 2030
        assert re.fullmatch(r"E|\d{3}(\.\d+)?", r.classification), r.classification
        assert r.pages > 0
    publishers = {r.publisher for r in records}
    assert {"ポプラ社", "フレーベル館", "講談社", "岩波書店", "新潮社", "作品社", "南方新社"} <= publishers
    # No placeholder titles like 本1, 本2.
    assert not any(re.fullmatch(r"本\d+", r.title) for r in records)
    for region in ["熊本", "鹿児島", "奄美", "新潟", "山口"]:
        assert len(search(q=region)) >= 8, region


def test_multi_volume_works() -> None:
    vols = volumes_of("1000000039")  # 竜馬がゆく 1
    assert [v.volume for v in vols] == ["1", "2", "3", "4"]
    assert len({v.title for v in vols}) == 1
    series = [r for r in load_records() if r.volume == "3"]
    assert len(series) >= 5
    # A library holding one volume holds them all (まとめて予約 needs the set).
    for lib in LIBRARIES:
        held = holdings(lib)
        for r in series:
            ids = {v.id for v in volumes_of(r.id)}
            assert len(ids & held.keys()) in (0, len(ids)), (lib, r.title)


def test_deterministic() -> None:
    # The generator writes exactly the committed file, and holdings do not drift.
    text = Path("fixtures/catalog/records.json").read_text(encoding="utf-8")
    import json

    assert json.loads(text) == build()
    assert build() == build()
    assert holdings("kumamoto-city") == holdings("kumamoto-city")


def test_deterministic_across_processes() -> None:
    code = "from fixtures.catalog import holdings; h = holdings('amami'); print(len(h), sorted(h)[5], h[sorted(h)[5]])"
    outs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={"PYTHONHASHSEED": seed, "PATH": ""}, cwd=Path.cwd()).stdout
        for seed in ("1", "2")
    }
    assert len(outs) == 1


@pytest.mark.parametrize("lib", LIBRARIES)
def test_holdings_per_library(lib: str) -> None:
    records = load_records()
    held = holdings(lib)
    assert held, lib
    share = len(held) / len(records)
    assert 0.58 <= share <= 0.92, (lib, share)
    for rid in ("1000000001", "1000000002", "1000000003"):
        assert rid in held
    names = set(branches_of(lib))
    assert names
    words = Counter()
    item_ids = set()
    for rid, copies in held.items():
        assert get_record(rid) is not None
        assert copies
        for c in copies:
            assert c.branch in names
            assert c.item_id not in item_ids
            item_ids.add(c.item_id)
            assert re.fullmatch(r"[0-9A-Za-z]+", c.item_id)
            assert re.fullmatch(r"(E|\d{3}(\.\d+)?)/[\u30a0-\u30ff]+(/.+)?", c.call_number), c.call_number
            words[c.status_word] += 1
    assert set(words) <= {w for w, _ in STATUS_WORDS}
    assert words.most_common(1)[0][0] == "貸出可"
    assert len(words) >= 5
    assert all(holding_status(w) != "unknown" for w in words)


def test_holdings_differ_between_libraries() -> None:
    a, b = holdings("kumamoto-city"), holdings("niigata-city")
    assert set(a) != set(b)


def test_holdings_uses_configured_branches() -> None:
    from gateway.config import sandbox_config

    cfg = sandbox_config().libraries.get("kumamoto-city")
    if cfg is None:
        pytest.skip("kumamoto-city not in the sandbox configuration")
    names = {b.name for b in cfg.branches}
    used = {c.branch for copies in holdings("kumamoto-city").values() for c in copies}
    assert used <= names and len(used) > 5


def test_seed_statuses() -> None:
    h = holdings("kagoshima-pref")
    assert [c.status_word for c in h["1000000001"]] == ["貸出中"]
    assert [c.status_word for c in h["1000000002"]] == ["貸出可"]
    assert h["1000000002"][0].call_number == "289.1/セ"


def test_holdings_are_independent_copies() -> None:
    h = holdings("amami")
    h.clear()
    assert holdings("amami")
