"""The soap adapter's mapping options: validation and the pure path/template helpers."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pytest
from pydantic import ValidationError

from adapters.soap import SoapAdapter
from adapters.soap.mapping import SoapOptions, build_request, get_field, get_list, get_path
from core.errors import UpstreamChanged
from gateway.config import ConfigError, sandbox_config

CFG = sandbox_config()


def options(lib: str = "soap-demo") -> dict[str, Any]:
    return copy.deepcopy(CFG.libraries[lib].options)


@pytest.mark.parametrize("lib", ["soap-demo", "soap-kita"])
def test_sandbox_mappings_validate(lib: str) -> None:
    opts = SoapOptions.model_validate(options(lib))
    assert opts.operations.loans.items and opts.operations.holds.status


def test_unknown_template_variable_is_rejected() -> None:
    bad = options()
    bad["operations"]["loans"]["request"] = {"SessionKey": "$sesion"}
    with pytest.raises(ValidationError, match="unknown variable"):
        SoapOptions.model_validate(bad)


def test_bad_path_is_rejected() -> None:
    bad = options()
    bad["operations"]["loans"]["fields"]["due_on"] = "Date Due"
    with pytest.raises(ValidationError, match="dotted path"):
        SoapOptions.model_validate(bad)


def test_renewal_field_needs_its_table() -> None:
    bad = options()
    bad["operations"]["loans"]["renewal"] = {}
    with pytest.raises(ValidationError, match="renewal table"):
        SoapOptions.model_validate(bad)


def test_unknown_api_code_in_fault_table_is_rejected() -> None:
    bad = options()
    bad["faults"]["codes"]["NoSuchIssue"] = "gone"
    with pytest.raises(ValidationError):
        SoapOptions.model_validate(bad)


def test_missing_operation_is_a_config_error_naming_library_and_key() -> None:
    bad = options()
    del bad["operations"]["holds"]
    lib = CFG.libraries["soap-demo"].model_copy(update={"options": bad})
    with pytest.raises(ConfigError, match=r"soap-demo.*options\.operations\.holds"):
        SoapAdapter(lib)


def test_construction_touches_no_network() -> None:
    lib = CFG.libraries["soap-demo"].model_copy(update={"base_url": "http://127.0.0.1:9/never"})
    adapter = SoapAdapter(lib)
    assert adapter.request_count == 0 and adapter._zeep_client is None


def test_build_request_nests_formats_and_omits() -> None:
    template = {
        "request.ticket": "$session",
        "request.biblio.id": "$record_id",
        "request.validUntil": "$expires_on|%Y/%m/%d",
        "request.contact": "$contact_code",
        "request.locale": "ja",
    }
    got = build_request(
        template,
        {"session": "T", "record_id": "100", "expires_on": date(2027, 3, 1), "contact_code": None},
    )
    assert got == {
        "request": {
            "ticket": "T",
            "biblio": {"id": "100"},
            "validUntil": "2027/03/01",
            "locale": "ja",
        }
    }


def test_paths() -> None:
    data = {"return": {"user": {"name": {"family": "鈴木", "given": "次郎"}, "mail": None}}}
    assert get_field(data, ["return.user.name.family", "return.user.name.given"]) == "鈴木 次郎"
    assert get_path(data, "return.user.mail") is None
    assert get_path(data, "return.user.mail.address") is None  # under an absent element
    with pytest.raises(UpstreamChanged, match="return.user.email"):
        get_path(data, "return.user.email")
    assert get_list({"a": {"b": {"id": 1}}}, "a.b") == [{"id": 1}]  # a single, non-repeating item


def test_nested_lists_are_flattened() -> None:
    data = {
        "branches": {
            "branch": [
                {"loans": {"loan": [{"id": "a"}, {"id": "b"}]}},
                {"loans": {"loan": []}},
                {"loans": {"loan": {"id": "c"}}},
            ]
        }
    }
    assert [x["id"] for x in get_list(data, "branches.branch.loans.loan")] == ["a", "b", "c"]
    with pytest.raises(UpstreamChanged):
        get_list(data, "branches.branch.checkouts.loan")


def test_a_structure_where_text_is_expected_is_drift() -> None:
    from adapters.soap.mapping import as_text

    with pytest.raises(UpstreamChanged):
        as_text({"family": "鈴木"})
    assert as_text("  山田 ") == "山田"


def test_repeated_email_elements() -> None:
    from zoneinfo import ZoneInfo

    from adapters.soap.mapping import Context, map_profile

    op = SoapOptions.model_validate(options("soap-kita")).operations.profile
    answer = {
        "return": {
            "user": {
                "name": {"family": "鈴木", "given": "次郎"},
                "mail": ["a@example.jp", "b@example.jp"],
                "phone": None,
                "defaultPickupPoint": {"code": "02", "label": "赤羽図書館"},
                "contact": "MAIL",
                "validUntil": "2028/11/30",
            }
        }
    }
    ctx = Context("soap-kita", ZoneInfo("Asia/Tokyo"), {}, {"MAIL": "メール"}, date(2026, 1, 1))
    profile = map_profile(op, answer, ctx, "******0002")
    assert [e.address for e in profile.emails] == ["a@example.jp", "b@example.jp"]
    assert profile.contact_method == "メール" and profile.card_expires_on == date(2028, 11, 30)
