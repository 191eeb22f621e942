"""``opacgw sdi``: match MARC files against alerts, or harvest configured feeds.

* ``opacgw sdi match --feed FILE [--feed FILE ...] --alerts ALERTS.json`` prints one
  JSON object per line, ``{"alert_id", "record_id", "title"}``, exactly the matches
  the semantics define (files in ISO 2709, MARCXML or an OAI-PMH ListRecords page,
  sniffed; read in the order given as one run).  Malformed records are skipped and
  counted on stderr.  ALERTS.json is a JSON list of Alert objects (API.md);
  ``name`` and ``source`` may be left out.
* ``opacgw sdi run [--library ID] [--config F]`` harvests the feeds of the
  configured libraries, matches their active gateway alerts and stores the matches
  in the gateway database, with a progress bar on stderr; prints one JSON report
  per library on stdout.

``gateway.cli`` calls :func:`add_subcommand`; :func:`main` runs it alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.models import AlertCondition


class FileAlert(BaseModel):
    """An Alert of API.md as read from ALERTS.json (name and source optional)."""

    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1)
    name: str = ""
    conditions: list[AlertCondition] = Field(min_length=1)
    match: Literal["all", "any"] = "all"
    max_results: int = Field(default=10, ge=1, le=100)
    active: bool = True


def load_alerts(path: str) -> list[FileAlert]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SystemExit(f"opacgw sdi: cannot read alerts file {path}: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("alerts"), list):
        data = data["alerts"]  # also accept the API's {"alerts": [...]} answer
    if not isinstance(data, list):
        raise SystemExit(f"opacgw sdi: {path}: expected a JSON list of alerts")
    alerts = []
    for i, item in enumerate(data):
        try:
            alerts.append(FileAlert.model_validate(item))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise SystemExit(f"opacgw sdi: {path}: alert #{i}: {where}: {first['msg']}") from None
    ids = [a.id for a in alerts]
    if len(set(ids)) != len(ids):
        raise SystemExit(f"opacgw sdi: {path}: alert ids must be unique")
    return alerts


def cmd_match(args: argparse.Namespace) -> int:
    from gateway.sdi.engine import Engine
    from gateway.sdi.feed import FeedError, FeedStats, read_feed_bytes, sniff_format

    alerts = load_alerts(args.alerts)
    engine = Engine(alerts)
    stats = FeedStats()

    def records() -> Any:
        for name in args.feed:
            try:
                data = Path(name).read_bytes()
            except OSError as exc:
                raise SystemExit(f"opacgw sdi: cannot read feed {name}: {exc.strerror}") from None
            fmt = args.format or sniff_format(data)
            try:
                yield from read_feed_bytes(data, fmt, stats)
            except FeedError as exc:
                raise SystemExit(f"opacgw sdi: {name}: {exc}") from None

    out = sys.stdout
    count = 0
    for m in engine.iter_matches(records()):
        out.write(json.dumps({"alert_id": m.alert_id, "record_id": m.record_id, "title": m.title},
                             ensure_ascii=False) + "\n")
        count += 1
    out.flush()
    print(f"sdi match: {stats.records} records, {stats.malformed} malformed skipped, {stats.warnings} warnings, "
          f"{count} matches", file=sys.stderr)
    for err in stats.errors:
        print(f"  skipped: {err}", file=sys.stderr)
    for warning in stats.warning_details:
        print(f"  warning: {warning}", file=sys.stderr)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from gateway.config import load_config
    from gateway.sdi.harvest import Harvest, make_client, run_library
    from gateway.sdi.store import AlertStore

    config = load_config(args.config)
    if args.library:
        unknown = [lib for lib in args.library if lib not in config.libraries]
        if unknown:
            print(f"opacgw sdi run: unknown library {', '.join(unknown)}", file=sys.stderr)
            return 2
        libraries = [config.libraries[lib] for lib in args.library]
    else:
        libraries = [lib for lib in config.libraries.values() if lib.feed is not None]
    from gateway.runtime import open_gateway_database

    store = AlertStore(open_gateway_database(config))
    failed = 0
    with make_client() as client:
        for lib in libraries:
            def progress(h: Harvest, lib_id: str = lib.id) -> Any:
                return tqdm(h.records, total=h.total, desc=lib_id, unit="rec", file=sys.stderr,
                            disable=args.quiet, leave=True)

            try:
                report = run_library(store, lib, client, progress=progress).as_dict()
            except Exception as exc:  # noqa: BLE001 - one broken feed must not stop the others
                failed += 1
                report = {"library": lib.id, "error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(report, ensure_ascii=False), flush=True)
    return 1 if failed else 0


def add_subcommand(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``sdi`` (with ``match`` and ``run``) to an argparse sub-parser set."""
    sdi = subparsers.add_parser("sdi", help="new-arrival alerts (SDI) over MARC feeds",
                                description="Match MARC files against alerts (match), or harvest the "
                                            "configured feeds and store matches of gateway alerts (run).")
    sub = sdi.add_subparsers(dest="sdi_command", required=True)
    m = sub.add_parser("match", help="match MARC files against an alerts file; JSON lines on stdout")
    m.add_argument("--feed", action="append", required=True, metavar="FILE",
                   help="ISO 2709, MARCXML or OAI-PMH file (repeatable; read in order)")
    m.add_argument("--alerts", required=True, metavar="ALERTS.json", help="JSON list of Alert objects")
    m.add_argument("--format", choices=["marc21", "marcxml", "oai-pmh"], help="default: sniffed per file")
    m.set_defaults(func=cmd_match)
    r = sub.add_parser("run", help="harvest configured feeds and store matches of gateway alerts")
    r.add_argument("--library", action="append", metavar="ID", help="only this library (repeatable)")
    r.add_argument("--config", metavar="F", help="gateway configuration (default: $OPACGW_CONFIG or sandbox)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=cmd_run)
    return sdi


def main(argv: list[str] | None = None) -> int:
    """``main(["match", ...])`` or ``main(["sdi", "match", ...])``."""
    parser = argparse.ArgumentParser(prog="opacgw")
    add_subcommand(parser.add_subparsers(dest="command", required=True))
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "sdi":
        argv = ["sdi", *argv]
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
