"""Normalisation: NFKC → casefold → katakana→hiragana → no whitespace."""

import pytest

from gateway.sdi.normalize import NormalizeCache, normalize


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("アンパンマン", "あんぱんまん"),  # katakana → hiragana
        ("ｱﾝﾊﾟﾝﾏﾝ", "あんぱんまん"),  # half-width katakana: NFKC first, then kana
        ("ＳＦ傑作選", "sf傑作選"),  # full-width latin → ascii, casefolded
        ("Straße", "strasse"),  # casefold, not lower
        ("サンタ　クロース", "さんたくろーす"),  # ideographic space removed; ー (U+30FC) kept
        ("ヴ", "ゔ"),  # U+30F4 → U+3094
        ("ヵヶ", "ゕゖ"),  # U+30F5, U+30F6 are in range
        ("ヷ", "ヷ"),  # U+30F7 is outside U+30A1–U+30F6
        ("東野 圭吾\n", "東野圭吾"),
        ("①", "1"),  # compatibility character
        ("", ""),
    ],
)
def test_normalize_table(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_cache_equals_plain_and_stays_bounded() -> None:
    cache = NormalizeCache(limit=3)
    words = ["アイ", "ウエ", "オカ", "キク", "アイ"]
    assert [cache(w) for w in words] == [normalize(w) for w in words]
    assert len(cache._cache) <= 3
