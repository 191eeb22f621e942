"""The shared cassette scrubbing of ``fixtures/cassettes.py`` (used by the wo, soap and
ncip recorders and flow tests)."""

from __future__ import annotations

from typing import Any, ClassVar

from fixtures.cassettes import make_scrubber, mask_card, vcr_for


class _Req:
    def __init__(self, uri: str, body: Any, headers: dict[str, str]) -> None:
        self.uri, self.body, self.headers = uri, body, headers


def test_mask_card_keeps_the_last_four() -> None:
    assert mask_card("1000000002") == "******0002"
    assert mask_card("52") == "52"


def test_form_fields_are_scrubbed_dropped_or_masked_byte_for_byte() -> None:
    s = make_scrubber(scrub_form_fields={"tok"}, drop_form_fields={"pw"}, card_form_fields={"card"})
    # %82%A0 is Shift_JIS あ: it must come back unchanged
    req = s.request(_Req("http://127.0.0.1:5000/x", b"card=1000000002&pw=secret&tok=abc&q=%82%A0",
                         {"Content-Length": "44"}))
    assert req.body == b"card=%2A%2A%2A%2A%2A%2A0002&tok=SCRUBBED&q=%82%A0"
    assert req.headers["Content-Length"] == str(len(req.body))


def test_loopback_port_cookies_and_authorization() -> None:
    s = make_scrubber(replay_host="127.0.0.1:18105")

    class Req:
        uri = "http://127.0.0.1:40123/wo/opc_srh/usr_menu"
        body = None
        headers: ClassVar[dict[str, str]] = {"Cookie": "WOSID=abc; other=def", "Authorization": "Basic eHl6",
                                             "Host": "127.0.0.1:40123"}

    req = s.request(Req())
    assert req.uri == "http://127.0.0.1:18105/wo/opc_srh/usr_menu"
    assert req.headers == {"Cookie": "WOSID=SCRUBBED; other=SCRUBBED", "Authorization": "SCRUBBED",
                           "Host": "127.0.0.1:18105"}
    resp = s.response({"headers": {"Set-Cookie": ["WOSID=abc; HttpOnly; Path=/wo/"],
                                   "Location": ["http://127.0.0.1:40123/wo/opc_srh/usr_login"]},
                       "body": {"string": b""}})
    assert resp["headers"] == {"Set-Cookie": ["WOSID=SCRUBBED; HttpOnly; Path=/wo/"],
                               "Location": ["http://127.0.0.1:18105/wo/opc_srh/usr_login"]}


def test_pages_and_xml_bodies() -> None:
    s = make_scrubber(scrub_hidden_inputs=("wo_ctkn",), scrub_xml_elements={"Pin": "********", "ticket": "T"},
                      card_numbers=["3100000002", "00000002"], drop_headers={"set-cookie"})
    page = b'<input type="hidden" name="wo_ctkn" value="tok"><td>31000000021</td>'
    xml = "<ln:Pin>pass</ln:Pin><ticket>abc</ticket><userId>3100000002</userId>"
    resp = s.response({"headers": {"content-length": ["99"], "set-cookie": ["a=b"]}, "body": {"string": page}})
    # a number that merely contains a card is left alone (record ids do)
    assert resp["body"]["string"] == b'<input type="hidden" name="wo_ctkn" value="SCRUBBED"><td>31000000021</td>'
    assert resp["headers"] == {"content-length": [str(len(resp["body"]["string"]))]}
    assert s.text(xml) == "<ln:Pin>********</ln:Pin><ticket>T</ticket><userId>******0002</userId>"


def test_body_scrubber_and_custom_matcher_are_wired() -> None:
    def upper(body: Any) -> Any:
        return body.upper() if isinstance(body, bytes) else body

    def same(r1: Any, r2: Any) -> None:
        assert r1.body == r2.body

    v = vcr_for("/tmp", record_mode="none", match_on=["method", "same"], matchers={"same": same},
                body_scrubber=upper)
    assert v.record_mode == "none" and "same" in v.matchers
    req = v.before_record_request(_Req("http://h/x", b"abc", {}))
    assert req.body == b"ABC"
