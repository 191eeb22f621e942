"""One-line bibliographic descriptions from result lists."""

from __future__ import annotations

import pytest

from mappers import MappingError
from mappers.bibline import BibLine, parse_bibline

# (library, line, expected)
ROWS = [
    (
        "kagoshima-pref",
        "アンパンマンのサンタクロース / やなせ たかし / 作・絵 -- フレーベル館 -- 1981.11 -- E",
        BibLine("アンパンマンのサンタクロース", "やなせ たかし / 作・絵", "フレーベル館", "1981.11", "E"),
    ),
    (
        "kagoshima-pref",
        "悪意 / 東野 圭吾 / 著 -- 双葉社 -- 1996.9 -- 913.6",
        BibLine("悪意", "東野 圭吾 / 著", "双葉社", "1996.9", "913.6"),
    ),
    (
        "kumamoto-city",  # full-width spaces around the separators
        "赤松小三郎ともう一つの明治維新\u3000/\u3000関 良基 / 著\u3000--\u3000作品社\u3000--\u30002016.12\u3000--\u3000289.1",
        BibLine("赤松小三郎ともう一つの明治維新", "関 良基 / 著", "作品社", "2016.12", "289.1"),
    ),
    (
        "amami",  # no author
        "奄美の歴史と文化 -- 南方新社 -- 2004 -- 219.7",
        BibLine("奄美の歴史と文化", None, "南方新社", "2004", "219.7"),
    ),
    (
        "niigata-city",  # no class
        "新潟県の歴史 / 田中 圭一 -- 山川出版社 -- 1998",
        BibLine("新潟県の歴史", "田中 圭一", "山川出版社", "1998", None),
    ),
    (
        "yamaguchi-pref",  # full-width slash and dashes, no spaces
        "悪意／東野圭吾著－－双葉社－－1996.9－－913.6",
        BibLine("悪意", "東野圭吾著", "双葉社", "1996.9", "913.6"),
    ),
    (
        "yamaguchi-pref",  # bracketed year (supplied by the cataloguer)
        "長州藩の歴史 -- マツノ書店 -- [1990]",
        BibLine("長州藩の歴史", None, "マツノ書店", "1990", None),
    ),
    (
        "kagoshima-pref",  # call number style class
        "サンタクロースっているんでしょうか? / 中村 妙子 / 訳 -- 偕成社 -- 1977.12 -- 933/チ",
        BibLine("サンタクロースっているんでしょうか?", "中村 妙子 / 訳", "偕成社", "1977.12", "933/チ"),
    ),
    ("kumamoto-city", "悪意", BibLine("悪意")),
]


@pytest.mark.parametrize(("library", "line", "expected"), ROWS)
def test_parse_bibline(library: str, line: str, expected: BibLine) -> None:
    assert parse_bibline(line) == expected


def test_title_on_its_own_line() -> None:
    # WebOPAC lists print the title above "author -- publisher -- year -- class [status]".
    got = parse_bibline("関 良基 / 著 -- 作品社 -- 2016.12 -- 289.1 貸出可", title="赤松小三郎ともう一つの明治維新")
    assert got == BibLine("赤松小三郎ともう一つの明治維新", "関 良基 / 著", "作品社", "2016.12", "289.1")


@pytest.mark.parametrize("line", ["", "   ", "\u3000", " / 著者 -- 出版社"])
def test_no_title(line: str) -> None:
    with pytest.raises(MappingError):
        parse_bibline(line)
