"""Normalisation: NFKC → casefold → katakana→hiragana → no whitespace."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.sdi.normalize import _KANA_TABLE, NormalizeCache, fold_kana, normalize, normalize_utf8


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


# The engine's batch path (normalize_utf8, fold_kana) must give exactly what the
# plain definition gives: every whitespace character, characters that NFKC turns
# into a space plus a combining mark, the kana range and its edges, astral
# characters, lone surrogates and the engine's separators.
_SPACES = [chr(cp) for cp in range(0x10000) if chr(cp).isspace()]
_EDGES = ["\u30a0", "\u30a1", "\u30f6", "\u30f7", "\u3041", "\u3096", "\u00a8", "\u00b4", "ß", "ﬀ", "Ａ",
          "ｶ", "ﾞ", "\u3099", "\U0001f600", "\U00020b9f", "\ud800", "\udc80", "\x00", "\x01", "\x02", "-"]
_ALPHABET = st.one_of(st.sampled_from(_SPACES + _EDGES), st.characters(min_codepoint=0x3000, max_codepoint=0x30FF),
                      st.characters())


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=_ALPHABET, max_size=40))
def test_batch_normalisation_equals_plain(text: str) -> None:
    assert fold_kana(text) == text.translate(_KANA_TABLE)
    assert normalize_utf8(text) == normalize(text).encode("utf-8", "surrogatepass")


def test_wide_spaces_are_removed_on_the_batch_path() -> None:
    text = "サンタ\u2028クロース\x85 ｻﾝﾀ\u3000\u1680ＳＡＮＴＡ\u2029"
    assert normalize_utf8(text) == "さんたくろーすさんたsanta".encode()
