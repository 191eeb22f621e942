"""Every method and path of API.md is served, and /openapi.json documents it."""

from __future__ import annotations

import re

import pytest

from tests.conftest import SHARED

API_MD = SHARED / "docs" / "API.md"


def contract() -> list[tuple[str, str]]:
    text = API_MD.read_text(encoding="utf-8")
    out = set()
    for methods, path in re.findall(r"`((?:GET|POST|PUT|PATCH|DELETE)(?:\|(?:GET|POST|PUT|PATCH|DELETE))*) ([^` ]+)",
                                    text):
        path = path.split("?")[0]
        if path.startswith("..."):
            path = "/v1/libraries/{library}" + path[3:]
        for m in methods.split("|"):
            out.add((m, re.sub(r"\{[a-z_]+\}", "{}", path)))
    return sorted(out)


@pytest.mark.skipif(not API_MD.exists(), reason="../shared/docs/API.md is absent")
def test_every_contract_path_is_in_openapi(client) -> None:
    doc = client.get("/openapi.json").get_json()
    ours = {(m.upper(), re.sub(r"\{[a-z_]+\}", "{}", p)) for p, ops in doc["paths"].items() for m in ops}
    missing = [f"{m} {p}" for m, p in contract() if (m, p) not in ours]
    assert not missing, missing
    assert len(contract()) >= 50


#: additions to the contract beyond API.md (issue #14: watched accounts)
ADDITIONS = [
    ("POST", "/v1/subscriptions"), ("GET", "/v1/subscriptions"),
    ("GET", "/v1/subscriptions/{}"), ("PATCH", "/v1/subscriptions/{}"), ("DELETE", "/v1/subscriptions/{}"),
    ("GET", "/v1/subscriptions/{}/events"), ("GET", "/v1/subscriptions/{}/deliveries"),
    ("POST", "/v1/subscriptions/{}/calendar-url"), ("GET", "/v1/calendar/{}.ics"),
]


def test_every_addition_is_in_openapi(client) -> None:
    doc = client.get("/openapi.json").get_json()
    ours = {(m.upper(), re.sub(r"\{[a-z_]+\}", "{}", p)) for p, ops in doc["paths"].items() for m in ops}
    missing = [f"{m} {p}" for m, p in ADDITIONS if (m, p) not in ours]
    assert not missing, missing
