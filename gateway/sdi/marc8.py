"""Lenient MARC-8 → Unicode for feed records (issue 17).

pymarc's ``MARC8ToUnicode`` is the decoding this follows, with pymarc's own
character tables (``pymarc.marc8_mapping``), and gives the same text wherever
pymarc decodes a sequence.  Where pymarc cannot, it fails in one of three ways,
and here each becomes U+FFFD and a counted problem instead:

* it raises (``UnicodeDecodeError``, "invalid multibyte character encoding"),
  which makes the whole record unreadable — an escape sequence cut short at the
  end of a subfield (``ESC $ ,`` without its final byte, a lone ``ESC``);
* it writes a message to stderr and puts a blank — a multibyte (EACC) character
  cut short, or a code with no mapping in the current set;
* it keeps the ``ESC`` of a designation it cannot read (``ESC (`` at the end).

One more difference, also only on undecodable bytes: in the multibyte set an
``ESC`` inside the next three bytes ends the cut-short character there (EACC
bytes are 0x21–0x7E, so no EACC character contains an ESC) and the escape
sequence is read; pymarc would take the ESC as part of the character and stay
in the multibyte set for the rest of the subfield.

Decoding is per subfield with a fresh state (G0 basic Latin, G1 ANSEL), as in
pymarc; combining marks come before their base character in MARC-8 and after it
in Unicode, and the result is NFC.
"""

from __future__ import annotations

import unicodedata

from pymarc.marc8_mapping import CODESETS, ODD_MAP

REPLACEMENT = "\ufffd"
ESC = 0x1B
BASIC_LATIN = 0x42
ANSEL = 0x45
EACC = 0x31  # the only multibyte set: three bytes a character
G0_DESIGNATORS = b"(,$"  # ESC ( F, ESC , F, ESC $ F, ESC $ , F
G1_DESIGNATORS = b")-"  # ESC ) F, ESC - F
RETURN_TO_ASCII = 0x73  # ESC s


def marc8_to_unicode(data: bytes) -> tuple[str, int]:
    """(text, number of undecodable sequences replaced by U+FFFD)."""
    if not data:
        return "", 0
    out: list[str] = []
    combining: list[str] = []
    bad = 0
    g0, g1 = BASIC_LATIN, ANSEL
    n = len(data)
    pos = 0
    while pos < n:
        if data[pos] == ESC:
            if pos + 1 >= n:  # a lone ESC at the end
                out.append(REPLACEMENT)
                bad += 1
                break
            intermediate = data[pos + 1]
            if intermediate in G0_DESIGNATORS:
                final = pos + 2
                if intermediate == 0x24 and final < n and data[final] == 0x2C:  # ESC $ , F
                    final += 1
                if final >= n:  # cut short: no final byte
                    out.append(REPLACEMENT)
                    bad += 1
                    break
                g0 = data[final]
                pos = final + 1
                continue
            if intermediate in G1_DESIGNATORS:
                if pos + 2 >= n:
                    out.append(REPLACEMENT)
                    bad += 1
                    break
                g1 = data[pos + 2]
                pos += 3
                continue
            if intermediate in CODESETS:  # ESC F: a G0 set by its final byte alone
                g0 = intermediate
                pos += 2
            elif intermediate == RETURN_TO_ASCII:
                g0 = BASIC_LATIN
                pos += 2
            # else (an unknown ESC F) the ESC is read as a character below and,
            # being a control character, dropped — as pymarc does
            if pos >= n:
                break
        multibyte = g0 == EACC
        if multibyte:
            chunk = data[pos:pos + 3]
            stop = chunk.find(ESC, 1)
            if len(chunk) < 3 or stop > 0:  # cut short (by the end or by an escape sequence)
                out.append(REPLACEMENT)
                bad += 1
                pos += stop if stop > 0 else 3
                continue
            code = (chunk[0] << 16) | (chunk[1] << 8) | chunk[2]
            pos += 3
        else:
            code = data[pos]
            pos += 1
        if code < 0x20 or 0x80 < code < 0xA0:
            continue  # control characters are dropped, as pymarc does
        table = CODESETS.get(g1 if code > 0x80 and not multibyte else g0)
        entry = table.get(code) if table is not None else None
        if entry is None:
            odd = ODD_MAP.get(code)
            if odd is not None:
                out.append(chr(odd))
                continue
            entry = (0xFFFD, False)  # no mapping (pymarc: a blank)
            bad += 1
        point, is_combining = entry
        if is_combining:
            combining.append(chr(point))
        else:
            out.append(chr(point))
            if combining:
                out.extend(combining)
                combining = []
    return unicodedata.normalize("NFC", "".join(out)), bad
