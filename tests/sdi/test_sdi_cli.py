"""``opacgw sdi match`` and ``opacgw sdi run``."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fixtures.catalog import load_records
from fixtures.feeds import acquired, create_app
from fixtures.feeds.marcgen import catalog_fields, encode_iso2709, malformed_iso2709
from fixtures.registry import serve_app
from gateway.models import AlertCondition, AlertCreate
from gateway.sdi import cli
from gateway.sdi.reference import reference_matches
from gateway.sdi.store import AlertStore
from tests.sdi.helpers import alert, pymarc_records

ALERTS = [alert("santa", ("title", "contains", "サンタクロース"), max_results=100),
          alert("kana", ("title", "contains", "さんたくろーす"), ("subject", "not_contains", "クリスマス"),
                max_results=100),
          alert("off", ("any", "contains", "の"), active=False),
          alert("few", ("any", "contains", "の"), max_results=3)]


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, Path]:
    records = load_records()
    half = len(records) // 2
    one = tmp_path / "one.mrc"
    one.write_bytes(b"".join(encode_iso2709(catalog_fields(r)) for r in records[:half]) + malformed_iso2709()[1])
    two = tmp_path / "two.mrc"
    two.write_bytes(b"".join(encode_iso2709(catalog_fields(r)) for r in records[half:]))
    alerts = tmp_path / "alerts.json"
    alerts.write_text(json.dumps(ALERTS, ensure_ascii=False), encoding="utf-8")
    return one, two, alerts


def test_match_prints_exactly_the_reference_matches(files: Any, capsys: Any) -> None:
    one, two, alerts = files
    assert cli.main(["match", "--feed", str(one), "--feed", str(two), "--alerts", str(alerts)]) == 0
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    want = reference_matches(pymarc_records(one.read_bytes() + two.read_bytes()), ALERTS)
    assert lines == [{"alert_id": m.alert_id, "record_id": m.record_id, "title": m.title} for m in want]
    assert {"santa", "kana", "few"} <= {l["alert_id"] for l in lines}
    assert sum(l["alert_id"] == "few" for l in lines) == 3
    assert "1 malformed skipped" in err


def test_match_rejects_an_alert_without_conditions(tmp_path: Path, files: Any) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"id": "x", "conditions": []}]))
    with pytest.raises(SystemExit, match="conditions"):
        cli.main(["match", "--feed", str(files[0]), "--alerts", str(bad)])


def test_opacgw_sdi_match_subprocess(files: Any) -> None:
    one, _two, alerts = files
    proc = subprocess.run([sys.executable, "-m", "gateway.cli", "sdi", "match", "--feed", str(one),
                           "--alerts", str(alerts)], capture_output=True, text=True, timeout=60, check=True)
    first = json.loads(proc.stdout.splitlines()[0])
    assert set(first) == {"alert_id", "record_id", "title"}


def test_match_finds_hyphenated_and_full_width_isbn_values(tmp_path: Path, capsys: Any) -> None:
    """Issue 17: the value 978-4-1 (or ９７８４１) finds ISBN 9784101..., hyphens or not."""
    feed = tmp_path / "isbn.mrc"
    feed.write_bytes(encode_iso2709([("001", "N1"), ("020", " ", " ", [("a", "9784101001548")]),
                                     ("245", "1", "0", [("a", "こころ")])])
                     + encode_iso2709([("001", "N2"), ("020", " ", " ", [("a", "978-4-10-100155-5")]),
                                       ("245", "1", "0", [("a", "坊っちゃん")])])
                     + encode_iso2709([("001", "N3"), ("020", " ", " ", [("a", "9784061")]),
                                       ("245", "1", "0", [("a", "978-4-1")])]))
    alerts = tmp_path / "alerts.json"
    alerts.write_text(json.dumps([alert("hy", ("isbn", "contains", "978-4-1")),
                                  alert("fw", ("isbn", "contains", "９７８４１")),
                                  alert("any", ("any", "contains", "978-4-1"))], ensure_ascii=False))
    assert cli.main(["match", "--feed", str(feed), "--alerts", str(alerts)]) == 0
    got = [(m["alert_id"], m["record_id"]) for m in map(json.loads, capsys.readouterr().out.splitlines())]
    # N3's title has "978-4-1" with its hyphens: any finds it there too
    assert got == [("hy", "N1"), ("fw", "N1"), ("any", "N1"), ("hy", "N2"), ("fw", "N2"), ("any", "N2"),
                   ("any", "N3")]


def test_match_keeps_a_marc8_record_with_a_cut_off_escape_and_warns(tmp_path: Path, capsys: Any) -> None:
    good = encode_iso2709([("001", "M1"), ("245", "1", "0", [("a", "アイウ")])], marc8=True)
    feed = tmp_path / "marc8.mrc"
    feed.write_bytes(good.replace(b"\x1b(B\x1e", b"\x1b$,\x1e", 1))  # ESC $ , without its final byte
    alerts = tmp_path / "alerts.json"
    alerts.write_text(json.dumps([alert("k", ("title", "contains", "あいう"))], ensure_ascii=False))
    assert cli.main(["match", "--feed", str(feed), "--alerts", str(alerts)]) == 0
    out, err = capsys.readouterr()
    assert [json.loads(line) for line in out.splitlines()] == [
        {"alert_id": "k", "record_id": "M1", "title": "アイウ\ufffd"}]
    assert "1 records, 0 malformed skipped, 1 warnings, 1 matches" in err
    assert "warning: record 1: 1 undecodable MARC-8 sequence(s) in 245 replaced by U+FFFD" in err


def test_run_harvests_configured_feeds_and_stores_matches(tmp_path: Path, capsys: Any) -> None:
    server = serve_app(create_app("feeds"), port=0, name="feeds")
    try:
        db = tmp_path / "gw.sqlite3"
        config = tmp_path / "gw.toml"
        config.write_text(f"""
[gateway]
database = "{db}"

[libraries.ncip-consortium]
name = "NCIP"
adapter = "ncip"
base_url = "http://127.0.0.1:9/ncip"
feed = {{ url = "{server.url}/feeds/ncip-consortium/new.mrc", format = "marc21" }}

[libraries.soap-demo]
name = "SOAP"
adapter = "soap"
base_url = "http://127.0.0.1:9/soap"
feed = {{ url = "{server.url}/feeds/soap-demo/oai", format = "oai-pmh" }}
""", encoding="utf-8")
        store = AlertStore(sqlite3.connect(db))
        made = store.create("ncip-consortium", "hash-1", AlertCreate(
            name="サンタ", conditions=[AlertCondition(field="title", value="サンタクロース")], max_results=50))
        assert cli.main(["run", "--config", str(config), "--quiet"]) == 0
        reports = {r["library"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
        assert reports["soap-demo"]["skipped"] == "no active gateway alerts"
        ncip = reports["ncip-consortium"]
        assert ncip["malformed"] == 4 and ncip["records"] == len(acquired("ncip-consortium"))
        stored = [m.record_id for m in AlertStore(sqlite3.connect(db)).matches(made.id)]
        want = [r.id for r in acquired("ncip-consortium") if "サンタクロース" in r.title][:50]
        assert stored == want and stored
        # a second run reports nothing new
        assert cli.main(["run", "--config", str(config), "--library", "ncip-consortium", "--quiet"]) == 0
        assert json.loads(capsys.readouterr().out)["matches"] == 0
    finally:
        server.stop()


def test_run_reports_a_dead_feed_and_goes_on(tmp_path: Path, capsys: Any) -> None:
    server = serve_app(create_app("feeds"), port=0, name="feeds")
    try:
        db = tmp_path / "gw.sqlite3"
        config = tmp_path / "gw.toml"
        config.write_text(f"""
[gateway]
database = "{db}"

[libraries.dead]
name = "止まった図書館"
adapter = "ncip"
base_url = "http://127.0.0.1:9/ncip"
feed = {{ url = "http://127.0.0.1:9/feeds/dead/new.mrc", format = "marc21" }}

[libraries.alive]
name = "動く図書館"
adapter = "ncip"
base_url = "http://127.0.0.1:9/ncip"
feed = {{ url = "{server.url}/feeds/alive/new.xml", format = "marcxml" }}
""", encoding="utf-8")
        store = AlertStore(sqlite3.connect(db))
        for lib in ("dead", "alive"):
            store.create(lib, "h", AlertCreate(name="any", conditions=[
                AlertCondition(field="any", op="not_contains", value="存在しない")]))
        assert cli.main(["run", "--config", str(config), "--quiet"]) == 1
        reports = {r["library"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
        assert "ConnectError" in reports["dead"]["error"]
        assert reports["alive"]["matches"] == 10 and reports["alive"]["malformed"] == 3
    finally:
        server.stop()
