"""`opacgw probe URL` against every sandbox simulator of the winj and wo families (each on a
free loopback port, at its configured context path), an unrelated page and a dead port."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest
from flask import Flask

from fixtures.registry import serve_app, start_simulator
from gateway.cli import main
from gateway.config import sandbox_config

PORTALS = [lib for lib in sandbox_config().libraries.values() if lib.adapter in ("winj", "wo")]


@pytest.mark.parametrize("lib", PORTALS, ids=lambda lib: lib.id)
def test_probe_names_family_context_path_and_prints_a_stanza_config_check_accepts(lib, tmp_path, capsys):
    context = urlsplit(lib.base_url).path
    sim = start_simulator(lib.id)
    try:
        assert main(["probe", f"{sim.url}{context}/", "--id", lib.id]) == 0
    finally:
        sim.stop()
    out = capsys.readouterr().out
    assert f"family:       {lib.adapter}\n" in out
    assert f"context path: {context}\n" in out
    assert ("txt_usercd" if lib.adapter == "winj" else "usr_id") in out
    charset = (lib.options.get("portal") or {}).get("charset", "UTF-8" if lib.adapter == "winj" else "Shift_JIS")
    assert f"charset:      {charset}\n" in out
    stanza = out[out.index(f"[libraries.{lib.id}]"):]
    assert f'adapter = "{lib.adapter}"' in stanza
    assert f'base_url = "{sim.url}{context}"' in stanza
    cfg = tmp_path / "probed.toml"
    cfg.write_text(stanza, encoding="utf-8")
    assert main(["config", "--check", str(cfg)]) == 0
    assert f"1 libraries: {lib.id}" in capsys.readouterr().out


def test_kagoshima_under_kento_has_cold_login_and_its_button_caption(capsys):
    sim = start_simulator("kagoshima-pref")
    try:
        assert main(["probe", f"{sim.url}/kento/opac/top.do"]) == 0
    finally:
        sim.stop()
    out = capsys.readouterr().out
    assert "context path: /kento/opac\n" in out
    assert 'login_button = "ログイン(認証)"' in out


def test_an_unrelated_page_exits_2_with_a_clear_message(capsys):
    app = Flask("unrelated")

    @app.route("/")
    def index():
        return ('<html><head><title>Shop</title></head><body><a href="/login">ログイン</a>'
                '<form name="search" action="/find"><input name="q"></form></body></html>')

    @app.route("/login")
    def login():
        return '<form action="/session" method="post"><input name="user"><input name="password" type="password"></form>'

    server = serve_app(app)
    try:
        assert main(["probe", server.url + "/"]) == 2
    finally:
        server.stop()
    err = capsys.readouterr().err
    assert "no known OPAC portal" in err


def test_an_unreachable_url_exits_2(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["probe", f"http://127.0.0.1:{port}/winj/opac/"]) == 2
    assert "unreachable" in capsys.readouterr().err
