"""MARC readers side by side (issue 17): pymarc, rmarc and mrrc.

    python bench/sdi_readers.py [--records 20000] [--seed 7]

1. Speed: CPU seconds to read the generated JAPAN/MARC-shaped feed of
   ``bench/sdi.py`` (same generator, same seed), record by record as the gateway
   does it (split on the record terminator, one decode per record), and the
   gateway's own reading paths (reader + match-field extraction).
2. Sameness, on the generated feed and on every ISO 2709 file in
   ``../shared/conformance/marc/``: per reader, how many records it reads, and
   how many of them have exactly pymarc's fields (tags, indicators, subfield
   codes and values, in order).  A reader can only replace pymarc if it reads the
   same records with the same fields.

mrrc is not a dependency of the gateway: ``pip install mrrc`` (or
``pip install -e '.[bench]'``) to include it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import sys
import time
import unicodedata
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pymarc
import rmarc
from rmarc._rmarc import decode_marc_raw

from bench.sdi import Vocab, make_feed
from gateway.sdi.feed import FeedStats, iter_iso2709, read_iso2709
from gateway.sdi.fields import extract
from gateway.sdi.marc8 import marc8_to_unicode

try:
    import mrrc
except ImportError:  # pragma: no cover - optional
    mrrc = None

MARC_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "conformance" / "marc"
KW = {"to_unicode": True, "force_utf8": False, "hide_utf8_warnings": True, "utf8_handling": "strict"}
Canon = list[tuple]


def canon_pymarc(record: Any) -> Canon:
    return [(f.tag, f.data) if f.is_control_field()
            else (f.tag, f.indicator1 + f.indicator2, tuple((s.code, s.value) for s in f.subfields))
            for f in record.fields]


def canon_raw(fields: list) -> Canon:
    return [(tag, body[1]) if body[0] == "control"
            else (tag, body[1] + body[2], tuple(body[3])) for tag, body in fields]


def canon_mrrc(record: Any) -> Canon:
    return [(f.tag, f.data) if f.is_control_field()
            else (f.tag, f.indicator1 + f.indicator2, tuple((s.code, s.value) for s in f.subfields()))
            for f in record.fields()]


def read_pymarc(chunk: bytes) -> Canon:
    return canon_pymarc(pymarc.Record(data=chunk, **KW))


def read_rmarc(chunk: bytes) -> Canon:
    return canon_pymarc(rmarc.Record(data=chunk, **KW))


def read_rmarc_raw(chunk: bytes) -> Canon:
    return canon_raw(decode_marc_raw(chunk, True, False, "iso8859-1", "strict", True)[1])


def read_mrrc(chunk: bytes) -> Canon:
    records = list(mrrc.MARCReader(chunk))
    if len(records) != 1 or records[0] is None:
        raise ValueError(f"{len(records)} records")
    return canon_mrrc(records[0])


READERS: dict[str, Callable[[bytes], Canon]] = {
    "pymarc": read_pymarc, "rmarc Record": read_rmarc, "rmarc raw": read_rmarc_raw,
    **({"mrrc": read_mrrc} if mrrc is not None else {})}


def chunks_of(data: bytes) -> list[bytes]:
    return [c.lstrip(b"\r\n") + b"\x1d" for c in data.split(b"\x1d")[:-1] if c.lstrip(b"\r\n")]


def sameness(data: bytes) -> dict[str, tuple[int, int]]:
    """reader → (records read, records with exactly pymarc's fields)."""
    out: dict[str, tuple[int, int]] = {}
    theirs: list[Canon | None] = []
    for name, read in READERS.items():
        read_ok = same = 0
        for i, chunk in enumerate(chunks_of(data)):
            try:
                with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    got: Canon | None = read(chunk)
            except Exception:  # noqa: BLE001 - any failure means "not read"
                got = None
            if name == "pymarc":
                theirs.append(got)
            if got is not None:
                read_ok += 1
                same += got == theirs[i]
        out[name] = (read_ok, same)
    return out


def timed(fn: Callable[[], int]) -> tuple[float, int]:
    t0 = time.process_time()
    n = fn()
    return time.process_time() - t0, n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    rng = random.Random(args.seed)
    feed = make_feed(args.records, Vocab(rng), rng)
    chunks = chunks_of(feed)
    print(f"generated feed: {len(chunks):,} records, {len(feed) / 2**20:.1f} MiB; CPU seconds")
    if mrrc is None:
        print("mrrc: not installed (pip install mrrc) - left out")

    rows: list[tuple[str, float, int]] = []
    for name, read in READERS.items():
        rows.append((f"{name} (per record)", *timed(lambda read=read: sum(1 for c in chunks if read(c)))))
    if mrrc is not None:
        rows.append(("mrrc (whole file)", *timed(lambda: sum(1 for _ in mrrc.MARCReader(feed)))))
    rows.append(("gateway before: pymarc + extract",
                 *timed(lambda: sum(1 for r in iter_iso2709(feed, FeedStats()) if extract(r)))))
    rows.append(("gateway now: read_iso2709", *timed(lambda: sum(1 for _ in read_iso2709(feed, FeedStats())))))
    base = rows[0][1]
    for name, seconds, n in rows:
        print(f"  {name:34s} {seconds:6.2f} s  {seconds / n * 1e6:6.1f} µs/record  {base / seconds:5.1f}× pymarc")

    print("same records and fields as pymarc: reader: read / same fields")
    sources = [("generated feed", feed)] + [(str(f.relative_to(MARC_DIR)), f.read_bytes())
                                             for f in sorted(MARC_DIR.glob("*/*"))
                                             if f.suffix in (".mrc", ".dat")]
    for label, data in sources:
        result = sameness(data)
        cells = "  ".join(f"{name} {ok}/{same}" for name, (ok, same) in result.items())
        print(f"  {label:56s} {cells}")
    print("the gateway's match fields (read_iso2709) vs pymarc + extract: kept / same / MARC-8 warnings")
    for label, data in sources:
        with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = [item for item in map(extract, iter_iso2709(data, FeedStats())) if item is not None]
        stats = FeedStats()
        ours = list(read_iso2709(data, stats))
        same = sum(a == b for a, b in zip(theirs, ours)) if len(theirs) == len(ours) else 0
        print(f"  {label:56s} pymarc {len(theirs)}  gateway {len(ours)}  same {same}  warnings {stats.warnings}")
    oracle = MARC_DIR / "pymarc" / "test_marc8.txt"
    if oracle.exists():
        lines = list(zip(oracle.read_bytes().rstrip(b"\n").split(b"\n"),
                         (MARC_DIR / "pymarc" / "test_utf8.txt").read_text(encoding="utf-8").rstrip("\n").split("\n")))
        want = [unicodedata.normalize("NFC", u) for _m, u in lines]
        decoders = {"pymarc": lambda b: pymarc.marc8_to_unicode(b, True),
                    "rmarc": lambda b: rmarc.marc8_to_unicode(b, True),
                    "gateway": lambda b: marc8_to_unicode(b)[0]}
        cells = "  ".join(f"{name} {sum(dec(m) == w for (m, _u), w in zip(lines, want))}"
                          for name, dec in decoders.items())
        print(f"MARC-8 oracle (test_marc8.txt = test_utf8.txt, {len(lines)} lines): {cells}  (mrrc: no MARC-8)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
