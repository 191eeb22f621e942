"""NCIP Problems never carry secrets into error bodies, and the XSD is found without a
machine path (``$OPACGW_SHARED`` or ``../shared`` next to the project)."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.ncip import xml as X
from adapters.ncip.parsers import parse_cancel_request_item
from adapters.ncip.problems import NcipProblem, problem_error
from core.errors import NotFound


@pytest.mark.parametrize("element", ["UserId", "UserIdentifierValue", "LookupUser/UserId/UserIdentifierValue"])
def test_a_card_number_in_problem_value_is_masked(element: str) -> None:
    p = NcipProblem("User Blocked", "no user 2377570123", element, "2377570123")
    assert p.fields()["ProblemValue"] == "******0123"
    assert "2377570123" not in str(p.fields()) and "2377570123" not in p.describe()
    err = problem_error(p, context="session")
    assert "2377570123" not in str(err.to_problem())  # type: ignore[attr-defined]


@pytest.mark.parametrize("element", ["AuthenticationInput", "AuthenticationInputData"])
def test_an_authentication_input_value_is_dropped(element: str) -> None:
    p = NcipProblem("User Authentication Failed", "bad s3cret-pin", element, "s3cret-pin")
    assert p.fields()["ProblemValue"] is None and "s3cret-pin" not in str(p.fields())


def test_other_problem_values_are_kept() -> None:
    p = NcipProblem("Unknown Item", "no item 1000000123", "ItemId", "1000000123")
    assert p.fields()["ProblemValue"] == "1000000123"


def test_cancelling_an_already_cancelled_request_is_not_found() -> None:
    raw = (b'<ns1:NCIPMessage xmlns:ns1="http://www.niso.org/2008/ncip"><ns1:CancelRequestItemResponse>'
           b"<ns1:Problem><ns1:ProblemType>Request Not Cancellable</ns1:ProblemType>"
           b"<ns1:ProblemDetail>the request is already Cancelled</ns1:ProblemDetail>"
           b"<ns1:ProblemElement>RequestStatusType</ns1:ProblemElement><ns1:ProblemValue>Cancelled"
           b"</ns1:ProblemValue></ns1:Problem></ns1:CancelRequestItemResponse></ns1:NCIPMessage>")
    with pytest.raises(NotFound):
        parse_cancel_request_item(raw, library="x")


def test_shared_dir_is_never_a_machine_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(X.ENV_SHARED, raising=False)
    monkeypatch.setattr(X, "PROJECT_SHARED", tmp_path / "no-shared-here")
    assert X.shared_dir() is None and X.schema_path() is None
    assert X.validation_errors(b"<x/>") is None  # validation skipped cleanly
    monkeypatch.setenv(X.ENV_SHARED, str(tmp_path))
    assert X.shared_dir() == tmp_path.resolve()


def test_shared_dir_defaults_to_shared_next_to_the_project(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(X.ENV_SHARED, raising=False)
    root = Path(__file__).resolve().parents[3]
    assert X.PROJECT_SHARED == root.parent / "shared"
    assert "/work/shared" not in Path(X.__file__).read_text(encoding="utf-8")
