"""`opacgw capture`: a scrubbed folder with a manifest, and the committed capture
(fixtures/winj/captures/kumamoto-city, captured from the sandbox simulator) read by the
winj parsers through ``load_capture`` — a reported page as a regression test in one step."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from adapters.winj import pages as P
from fixtures.cassettes import scrubber_for
from fixtures.registry import start_simulator
from gateway import capture as C
from gateway.cli import build_parser, main
from gateway.config import sandbox_toml

CAPTURED = Path(__file__).resolve().parents[2] / "fixtures" / "winj" / "captures" / "kumamoto-city"


def test_the_committed_capture_is_a_parser_regression_test():
    pages = C.load_capture(CAPTURED)
    entry, loans_page = pages["loans"]
    assert (entry.library, entry.family, entry.path, entry.charset) == ("kumamoto-city", "winj", "/lend-list.do", "UTF-8")
    rows, listing = P.parse_lend_items(P.tree(loans_page.text), entry.library, date(2026, 12, 4))
    assert rows and all(r.loan.title for r in rows)
    assert not any("【" in r.loan.title or "\xa0" in r.loan.title for r in rows)
    holds_entry, holds_page = pages["holds"]
    hold_rows, _ = P.parse_hold_items(P.tree(holds_page.text), holds_entry.library)
    assert hold_rows and all(r.hold.title for r in hold_rows)
    assert P.hid_session(P.tree(loans_page.text)) == "SCRUBBED"


def test_capture_against_the_simulator_scrubs_and_writes_a_manifest(tmp_path, monkeypatch, capsys):
    sim = start_simulator("kumamoto-city")
    cfg = tmp_path / "c.toml"
    cfg.write_text(sandbox_toml().replace("127.0.0.1:18101", f"127.0.0.1:{sim.port}"), encoding="utf-8")
    monkeypatch.setenv(C.ENV_CARD, "0000002377570")
    monkeypatch.setenv(C.ENV_PASSWORD, "0808")
    out = tmp_path / "cap"
    try:
        assert main(["capture", "--library", "kumamoto-city", "--config", str(cfg), "--out", str(out),
                     "loans", "mylibrary", "detail:1000000001"]) == 0
    finally:
        sim.stop()
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert [m["screen"] for m in manifest] == ["loans", "mylibrary", "detail:1000000001"]
    assert {"library", "family", "screen", "path", "charset", "captured_at", "file"} <= set(manifest[0])
    everything = b"".join(p.read_bytes() for p in out.iterdir())
    assert b"2377570" not in everything and b"demo@example.jp" not in everything
    assert b'name="hid_session" value="SCRUBBED"' in everything
    assert b"*********7570" in everything


def test_an_unknown_screen_is_refused_before_logging_in(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(C.ENV_CARD, "1")
    monkeypatch.setenv(C.ENV_PASSWORD, "x")
    assert main(["capture", "--library", "kumamoto-city", "--out", str(tmp_path), "loans", "lonas"]) == 2
    assert "unknown screen 'lonas'" in capsys.readouterr().err


def test_no_password_on_argv():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["capture", "--library", "amami", "--password", "x", "loans"])


def test_names_emails_and_session_values_are_scrubbed():
    from adapters.winj import WinjAdapter

    page = ("<p>熊本　太郎 様 demo@example.jp other@mail.example.com "
            "<a href='/x.do;jsessionid=ABCDEF1234567890'>x</a> 0000002377570</p>").encode("utf-8")
    scrubber = scrubber_for(WinjAdapter.secret_fields, card_numbers=["0000002377570"])
    out = C._scrub(page, "UTF-8", scrubber, ["ABCDEF1234567890"], ["熊本 太郎"], ["demo@example.jp"]).decode()
    assert "熊本" not in out and "@example.jp" not in out and "mail.example.com" not in out
    assert "ABCDEF1234567890" not in out and "2377570" not in out.replace("*********7570", "")
    assert C.NAME_PLACEHOLDER in out
