"""Alerts (SDI, 新着図書お知らせ): one API whoever holds the alert.

* A library whose adapter declares the ``alerts`` capability (the winj portals)
  keeps its own alerts: every route is dispatched to the adapter through the
  typed facade (``gw().patron(library).alerts()``) and the alerts carry
  ``source: "library"``.  Their matches are e-mailed by the library and cannot be read back, so ``.../matches`` of a
  library alert answers 501 ``not_supported`` (an empty list would claim "nothing
  new" when the truth is "unknown").
* Every other library gets gateway alerts (``source: "gateway"``), stored in the
  gateway database under (library, card hash) and matched against the library's
  MARC feed by ``opacgw sdi run``.  An alert of another patron is 404.
"""

from __future__ import annotations

from flask import Blueprint, Response

from adapters.base import Adapter
from core.errors import InvalidRequest, NotFound, NotSupported
from gateway.http import body, json_response, spec
from gateway.models import Alert, AlertCondition, AlertCreate, AlertList, AlertMatches, AlertUpdate
from gateway.runtime import gw
from gateway.sdi.normalize import needle
from gateway.sdi.store import AlertStore

bp = Blueprint("alerts", __name__, url_prefix="/v1/libraries/<library>/alerts")


def _native(library: str) -> bool:
    return gw().offers(library, Adapter.alerts)


def _store() -> AlertStore:
    return gw().alert_store


def _library_alert(alert: Alert) -> Alert:
    return alert if alert.source == "library" else alert.model_copy(update={"source": "library"})


def _check_values(conditions: list[AlertCondition] | None) -> None:
    # A value that normalises to "" (only spaces) would match every record that has
    # the field: certainly not what the patron meant.
    if not conditions:
        return
    bad = [{"field": f"conditions.{i}.value", "message": "empty after normalisation"}
           for i, c in enumerate(conditions) if not needle(c.field, c.field, c.value)]
    if bad:
        raise InvalidRequest("a condition value is empty after normalisation", errors=bad)


def _find_library_alert(library: str, alert_id: str) -> Alert:
    for alert in gw().patron(library).alerts():
        if alert.id == alert_id:
            return _library_alert(alert)
    raise NotFound(f"no alert {alert_id!r}", library=library)


def _gateway_alert(library: str, alert_id: str) -> Alert:
    acc = gw().account(library)
    alert = _store().get(library, acc.card_hash, alert_id)
    if alert is None:
        raise NotFound(f"no alert {alert_id!r}", library=library)
    return alert


@bp.get("")
@spec(response=AlertList, summary="The patron's new-arrival alerts (SDI)")
def list_alerts(library: str) -> Response:
    if _native(library):
        alerts = gw().patron(library).alerts()
        return json_response(AlertList(alerts=[_library_alert(a) for a in alerts]))
    acc = gw().account(library)
    return json_response(AlertList(alerts=_store().list(library, acc.card_hash)))


@bp.post("")
@spec(body=AlertCreate, response=Alert, status=201, summary="Create a new-arrival alert")
def create_alert(library: str) -> Response:
    new = body(AlertCreate)
    _check_values(new.conditions)
    if _native(library):
        alert = gw().patron(library).create_alert(new)
        return json_response(_library_alert(alert), 201)
    acc = gw().account(library)
    return json_response(_store().create(library, acc.card_hash, new), 201)


@bp.get("/<alert_id>")
@spec(response=Alert, summary="One alert")
def get_alert(library: str, alert_id: str) -> Response:
    if _native(library):
        return json_response(_find_library_alert(library, alert_id))
    return json_response(_gateway_alert(library, alert_id))


@bp.patch("/<alert_id>")
@spec(body=AlertUpdate, response=Alert, summary="Change an alert (name, conditions, active, ...)")
def update_alert(library: str, alert_id: str) -> Response:
    changes = body(AlertUpdate)
    _check_values(changes.conditions)
    if _native(library):
        alert = gw().patron(library).update_alert(alert_id, changes)
        return json_response(_library_alert(alert))
    acc = gw().account(library)
    alert = _store().update(library, acc.card_hash, alert_id, changes)
    if alert is None:
        raise NotFound(f"no alert {alert_id!r}", library=library)
    return json_response(alert)


@bp.delete("/<alert_id>")
@spec(status=204, summary="Delete an alert")
def delete_alert(library: str, alert_id: str) -> Response:
    if _native(library):
        gw().patron(library).delete_alert(alert_id)
        return Response(status=204)
    acc = gw().account(library)
    if not _store().delete(library, acc.card_hash, alert_id):
        raise NotFound(f"no alert {alert_id!r}", library=library)
    return Response(status=204)


@bp.get("/<alert_id>/matches")
@spec(response=AlertMatches, summary="Records matched by a gateway alert (record id, title, matched-at)")
def alert_matches(library: str, alert_id: str) -> Response:
    if _native(library):
        _find_library_alert(library, alert_id)
        raise NotSupported("this library's own SDI e-mails its matches; they cannot be read through its "
                           "portal", library=library, capability="alerts")
    alert = _gateway_alert(library, alert_id)
    return json_response(AlertMatches(matches=_store().matches(alert.id)))
