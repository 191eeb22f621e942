"""Strict sending: every NCIP message the adapter sends validates against the 2.02 XSD.

Two angles: each builder of ``adapters/ncip/messages.py`` with sample arguments, and
every message actually posted during a full patron session against the responder
simulator (captured at the adapter's ``_post``).  The responder's answers are
validated too.  The compiled schema is cached (``adapters.ncip.xml.schema``).
Skips when the XSD (``../shared/conformance/ncip/ncip_v2_02.xsd``) is absent.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from lxml import etree

from adapters.ncip import NcipAdapter
from adapters.ncip import messages as M
from adapters.ncip.xml import read_message, schema, validation_errors
from fixtures.ncip import create_app
from fixtures.registry import serve_app
from gateway.config import sandbox_config
from gateway.models import HoldRequest, HoldUpdate

pytestmark = pytest.mark.skipif(schema() is None, reason="the NCIP 2.02 XSD is not on this machine")

SAMPLES = M.all_samples()


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_builder_output_is_schema_valid(name: str) -> None:
    assert validation_errors(SAMPLES[name]) == []


def test_builders_cover_every_message_type_the_adapter_sends() -> None:
    kinds = {read_message(raw)[0].tag for raw in SAMPLES.values()}
    assert kinds == {"LookupUser", "RenewItem", "RequestItem", "CancelRequestItem", "UpdateRequestItem",
                     "LookupAgency", "LookupItem", "LookupItemSet"}


def test_schema_is_compiled_once() -> None:
    assert schema() is schema()


def test_an_invalid_message_is_reported() -> None:
    bad = SAMPLES["RenewItem"].replace(b"<ns1:ItemId>", b"<ns1:ItemIdentifier>").replace(
        b"</ns1:ItemId>", b"</ns1:ItemIdentifier>")
    errors = validation_errors(bad)
    assert errors and "ItemIdentifier" in errors[0]


@pytest.fixture
def captured() -> Iterator[tuple[NcipAdapter, list[bytes], list[bytes], Any]]:
    app = create_app("ncip-consortium")
    server = serve_app(app, name="ncip-schema")
    lib = sandbox_config().libraries["ncip-consortium"].model_copy(update={"base_url": server.url})
    adapter = NcipAdapter(lib)
    sent: list[bytes] = []
    received: list[bytes] = []
    original = adapter._post

    def spy(message: bytes) -> bytes:
        sent.append(message)
        answer = original(message)
        received.append(answer)
        return answer

    adapter._post = spy  # type: ignore[method-assign]
    try:
        yield adapter, sent, received, app.config["ncip_state"]
    finally:
        server.stop()


def test_every_message_of_a_full_session_is_schema_valid(captured: Any) -> None:
    from datetime import date, timedelta

    adapter, sent, received, state = captured
    s = adapter.login("00052", "ncip-pass")
    adapter.profile(s)
    loans = adapter.loans(s)
    adapter.renew(s, [loan.id for loan in loans])
    adapter.holds(s)
    adapter.messages(s, False)
    pickup = adapter.agency("CPL").locations[-1]
    results = adapter.place_holds(s, HoldRequest(record_ids=[state.bibs[1].id], pickup_branch=pickup,
                                                 expires_on=date.today() + timedelta(days=30)))
    assert results[0].hold is not None
    adapter.update_hold(s, results[0].hold.id, HoldUpdate(pickup_branch="chuo"))
    adapter.cancel_hold(s, results[0].hold.id)
    adapter.record(state.bibs[0].id)
    adapter.availability(state.bibs[0].isbn or "9780000000002")
    lending = adapter.create_lending_request(s, state.bibs[2].id, "ffl", None)
    adapter.lending_requests(s)
    adapter.cancel_lending_request(s, lending.upstream_id)
    kinds = {read_message(m)[0].tag for m in sent}
    assert kinds >= {"LookupUser", "RenewItem", "RequestItem", "CancelRequestItem", "UpdateRequestItem",
                     "LookupAgency", "LookupItemSet"}
    for m in sent:
        assert validation_errors(m) == [], read_message(m)[0].tag
    for answer in received:
        assert validation_errors(answer) == [], etree.tostring(read_message(answer))[:200]
