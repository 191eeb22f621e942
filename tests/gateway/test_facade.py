"""The typed facade: each contract method declares its capability once (``@operation`` on
``Adapter``); the facade, the 501 check and the retry/cache rules read that declaration,
and no view names a capability or a contract method as a string."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from adapters.base import Adapter, contract, declared
from core.errors import NotSupported
from gateway.facade import PatronCalls, PublicCalls
from gateway.models import CAPABILITIES
from tests import fakes
from tests.conftest import bearer, login

ROOT = Path(__file__).resolve().parents[2]
VIEWS = sorted((ROOT / "gateway").glob("api_*.py"))
#: contract methods the facade does not offer: sessions go through gateway.auth
SESSION_METHODS = {"login"}


def test_every_declaration_names_documented_capabilities() -> None:
    ops = contract()
    assert {"loans", "renew", "place_holds", "record", "search"} <= set(ops)
    for name, op in ops.items():
        assert op.name == name
        assert set(op.capabilities) <= set(CAPABILITIES), (name, op.capabilities)
    assert ops["renew"].write and not ops["loans"].write
    assert ops["record"].capabilities == ("search", "availability")


def test_every_contract_method_has_one_typed_facade_method_passing_itself() -> None:
    for name, op in contract().items():
        if name in SESSION_METHODS:
            continue
        owners = [cls for cls in (PatronCalls, PublicCalls) if hasattr(cls, name)]
        assert owners, f"no facade method for Adapter.{name}"
        for cls in owners:
            source = inspect.getsource(getattr(cls, name))
            assert f"Adapter.{name}," in source or f"Adapter.{name})" in source, (cls.__name__, name)
            # typed like the contract: the return annotation is the contract's
            facade_ret = inspect.signature(getattr(cls, name)).return_annotation
            contract_ret = inspect.signature(getattr(Adapter, name)).return_annotation
            assert facade_ret == contract_ret, (cls.__name__, name, facade_ret, contract_ret)
        assert (op.session is False) == (owners == [PublicCalls]), name


def test_undeclared_functions_are_refused_by_the_pipeline(app) -> None:
    pipeline = app.extensions["opacgw"].pipeline
    with pytest.raises(TypeError):
        pipeline.operation(Adapter.close)
    assert declared(Adapter.client) is None


def _string_args(call: ast.Call) -> list[str]:
    values = [*call.args, *(k.value for k in call.keywords)]
    return [v.value for v in values if isinstance(v, ast.Constant) and isinstance(v.value, str)]


#: the gateway's entry points a view could pass a capability or method name to
DISPATCH = {"patron", "public", "offers", "require", "fanout", "timed", "submit", "adapter"}


@pytest.mark.parametrize("view", VIEWS, ids=lambda p: p.name)
def test_no_view_passes_a_capability_or_method_name_as_a_string(view: Path) -> None:
    names = set(contract()) | set(CAPABILITIES)
    tree = ast.parse(view.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            assert called not in {"patron_call", "public_call", "call_as"}, (view.name, node.lineno)
            if called in DISPATCH:
                bad = [s for s in _string_args(node) if s in names]
                assert not bad, f"{view.name}:{node.lineno} passes {bad} as a string"
        if isinstance(node, ast.Compare) and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
            for right in node.comparators:
                assert not (isinstance(right, ast.Attribute) and right.attr == "capabilities"), (
                    f"{view.name}:{node.lineno} tests a capability by name: use gw().offers(lib, Adapter.x)")


def test_the_501_reads_the_declaration(client) -> None:
    """The fake family lacks shelves and cart: their 501 names the declared capability,
    and nothing reaches the upstream."""
    token = login(client, ("alpha", "12345", fakes.PASSWORD))
    up = fakes.upstream("alpha")
    up.calls.clear()
    for path, cap in (("/v1/libraries/alpha/shelves", declared(Adapter.shelves)),
                      ("/v1/libraries/alpha/cart", declared(Adapter.cart)),
                      ("/v1/libraries/alpha/history", declared(Adapter.history))):
        assert cap is not None
        r = client.get(path, headers=bearer(token))
        assert r.status_code == 501, r.get_json()
        assert r.get_json()["code"] == "not_supported"
        assert cap.capability in r.get_json()["detail"]
    assert up.calls == []


def test_per_library_capabilities_narrow_the_facade(app) -> None:
    """A library's adapter may offer less than its family (soap's optional hold_update):
    the facade checks the instance's capabilities, not the class's."""
    gw = app.extensions["opacgw"]
    adapter = gw.adapter("alpha")
    assert gw.offers("alpha", Adapter.holds)
    adapter.capabilities = frozenset(adapter.capabilities - {"holds"})
    try:
        assert not gw.offers("alpha", Adapter.holds)
        c = app.test_client()
        token = login(c, ("alpha", "12345", fakes.PASSWORD))
        r = c.get("/v1/libraries/alpha/holds", headers=bearer(token))
        assert r.status_code == 501 and "holds" in r.get_json()["detail"]
        with app.test_request_context(headers=bearer(token)):
            with pytest.raises(NotSupported):
                gw.patron("alpha").holds()
    finally:
        del adapter.capabilities
