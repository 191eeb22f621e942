"""Key rotation: MultiFernet secret_keys = [new, old], and card hashes with their own key."""

from __future__ import annotations

from cryptography.fernet import Fernet

from gateway.app import create_app
from gateway.config import loads_config
from gateway.sessions import Crypto
from tests import fakes
from tests.conftest import FAKE_CONFIG, bearer, login


def test_crypto_rotation_keeps_old_tokens_and_card_hashes() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    before = Crypto(old)
    sealed = before.seal({"cookie": "x"})
    rotated = Crypto([new, old])
    assert rotated.open(sealed) == {"cookie": "x"}
    assert Crypto(new).open(rotated.seal({"a": 1})) == {"a": 1}  # encrypts with the new key
    assert rotated.card_hash("lib", "123") == before.card_hash("lib", "123")
    # once the old key is dropped, card hashes stay with card_hash_key = the old key
    assert Crypto([new], hash_key=old).card_hash("lib", "123") == before.card_hash("lib", "123")
    assert Crypto([new], hash_key=old).open(sealed) is None
    assert Crypto(new).card_hash("lib", "123") != before.card_hash("lib", "123")


def _app(tmp_path, keys: list[str], hash_key: str | None = None):  # type: ignore[no-untyped-def]
    extra_gw = f"secret_keys = {keys!r}\n".replace("'", '"')
    if hash_key:
        extra_gw += f'card_hash_key = "{hash_key}"\n'
    text = FAKE_CONFIG.format(db=tmp_path / "gw.sqlite3", extra="").replace("[gateway]\n", "[gateway]\n" + extra_gw, 1)
    app = create_app(loads_config(text, "test.toml"))
    app.testing = True
    return app


def test_a_rotated_gateway_keeps_sessions_and_alerts(tmp_path) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    first = _app(tmp_path, [old])
    c = first.test_client()
    token = login(c, ("alpha", "12345", fakes.PASSWORD))
    made = c.post("/v1/libraries/alpha/alerts", headers=bearer(token),
                  json={"name": "猫", "conditions": [{"field": "title", "op": "contains", "value": "猫"}]})
    assert made.status_code == 201, made.get_json()
    first.extensions["opacgw"].close()

    rotated = _app(tmp_path, [new, old])
    c = rotated.test_client()
    assert c.get("/v1/libraries/alpha/loans", headers=bearer(token)).status_code == 200  # old sealed state opens
    rotated.extensions["opacgw"].close()

    # the old key gone, its card-hash key kept: the patron's alerts are still theirs
    later = _app(tmp_path, [new], hash_key=old)
    c = later.test_client()
    token2 = login(c, ("alpha", "12345", fakes.PASSWORD))
    alerts = c.get("/v1/libraries/alpha/alerts", headers=bearer(token2)).get_json()["alerts"]
    assert [a["name"] for a in alerts] == ["猫"]
    later.extensions["opacgw"].close()

    orphaned = _app(tmp_path, [new])  # what card_hash_key prevents
    c = orphaned.test_client()
    token3 = login(c, ("alpha", "12345", fakes.PASSWORD))
    assert c.get("/v1/libraries/alpha/alerts", headers=bearer(token3)).get_json()["alerts"] == []
    orphaned.extensions["opacgw"].close()
