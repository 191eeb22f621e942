"""The `opacgw` command: serve the gateway (with the embedded sandbox when no
configuration is given), run one simulator alone, print the sandbox configuration,
generate a secret key, and the SDI tools."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import re
import signal
import sys
import threading
from typing import Any
from urllib.parse import urlsplit

from gateway.config import (
    ENV_CONFIG,
    ConfigError,
    GatewayConfig,
    load_config,
    sandbox_config,
    sandbox_toml,
)

log = logging.getLogger("opacgw")


def _setup_logging(level: str) -> None:
    """JSON lines on stderr, scrubbed of secrets (gateway.logs)."""
    from gateway import logs

    logs.setup(level)


def _port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80)


def start_sandbox_simulators(config: GatewayConfig, latency_ms: int = 0) -> Any:
    """Start a simulator for every library (and sandbox service) that has one, each on
    the port of the configuration (see `sandbox_on_free_ports` for the ports in use)."""
    fleet, _, _ = _start_fleet(config, latency_ms, any_port_if_busy=False)
    return fleet


def sandbox_on_free_ports(config: GatewayConfig, latency_ms: int = 0) -> tuple[Any, GatewayConfig, dict[str, tuple[int, int]]]:
    """Start the sandbox simulators; one whose port is in use (another sandbox, another
    program) takes a free port instead. Returns the fleet, the configuration rewired to
    the ports taken, and name → (configured port, port taken) for the simulators that moved."""
    fleet, ports, moved = _start_fleet(config, latency_ms, any_port_if_busy=True)
    if not moved:
        return fleet, config, {}
    swap = {old: new for old, new in moved.values()}

    def rewire(text: str) -> str:
        return re.sub(r"(//(?:127\.0\.0\.1|localhost):)(\d+)",
                      lambda m: m.group(1) + str(swap.get(int(m.group(2)), m.group(2))), text)

    libraries = {}
    for lib_id, lib in config.libraries.items():
        text = json.dumps(lib.model_dump(mode="json"))
        libraries[lib_id] = lib if rewire(text) == text else type(lib).model_validate(json.loads(rewire(text)))
    services = {name: ports.get(name, port) for name, port in config.gateway.sandbox_services.items()}
    settings = config.gateway.model_copy(update={"sandbox_services": services})
    return fleet, config.model_copy(update={"libraries": libraries, "gateway": settings}), moved


def _start_fleet(config: GatewayConfig, latency_ms: int, *, any_port_if_busy: bool
                 ) -> tuple[Any, dict[str, int], dict[str, tuple[int, int]]]:
    from fixtures.registry import SimulatorFleet, simulators

    sims = simulators()
    fleet = SimulatorFleet(latency_ms)
    wanted: list[tuple[str, str, int]] = []
    for lib in config.libraries.values():
        if lib.id not in sims:
            log.warning("no simulator for library %s; it will be unavailable", lib.id)
            continue
        wanted.append((lib.id, *_port(lib.base_url)))
    for name, port in config.gateway.sandbox_services.items():
        if name in sims:
            wanted.append((name, "127.0.0.1", port))
        else:
            log.warning("no simulator named %s", name)
    ports: dict[str, int] = {}
    moved: dict[str, tuple[int, int]] = {}
    for name, host, port in wanted:
        ports[name] = fleet.add(name, host, port, any_port_if_busy=any_port_if_busy)
        if ports[name] != port:
            moved[name] = (port, ports[name])
    return fleet, ports, moved


def _demo_banner(config: GatewayConfig, host: str, port: int) -> str:
    from fixtures.registry import demo_accounts

    lines = [f"OPAC Gateway sandbox on http://{host}:{port}  (docs: http://{host}:{port}/docs)", "",
             "Demo accounts:"]
    for lib, accounts in demo_accounts().items():
        if lib not in config.libraries:
            continue
        for card, password, note in accounts:
            lines.append(f"  {lib:<16} card {card:<14} password {password:<12} {note}")
    lines += ["", "Try:",
              f"  curl -s http://{host}:{port}/v1/libraries",
              f"  TOKEN=$(curl -s -X POST http://{host}:{port}/v1/sessions -H 'Content-Type: application/json' \\",
              "      -d '{\"library\":\"kumamoto-city\",\"card_number\":\"2377570\",\"password\":\"0808\"}' "
              "| python -c 'import json,sys; print(json.load(sys.stdin)[\"token\"])')",
              f"  curl -s http://{host}:{port}/v1/libraries/kumamoto-city/loans -H \"Authorization: Bearer $TOKEN\"",
              "",
              f"Stop or restart a simulator to watch a library fail and recover: "
              f"curl -X POST http://{host}:{port}/sandbox/simulators/niigata-city/stop (…/start)",
              ""]
    return "\n".join(lines)


def _simulator_ports(fleet: Any, moved: dict[str, tuple[int, int]]) -> str:
    lines = ["Simulators:"]
    for sim in fleet.status():
        note = f"  (port {moved[sim['name']][0]} was in use)" if sim["name"] in moved else ""
        lines.append(f"  {sim['name']:<16} {sim['url']}{note}")
    return "\n".join(lines) + "\n"


def cmd_serve(args: argparse.Namespace) -> int:
    from werkzeug.serving import make_server

    from gateway.app import create_app
    from gateway.devserver import QuietRequestHandler

    path = args.config or os.environ.get(ENV_CONFIG)
    config = load_config(path) if path else sandbox_config()
    _setup_logging(config.gateway.log_level)
    sandbox = not path
    fleet = None
    moved: dict[str, tuple[int, int]] = {}
    if sandbox:
        fleet, config, moved = sandbox_on_free_ports(config, latency_ms=args.latency)
    elif args.latency:
        print("--latency applies to the sandbox simulators only", file=sys.stderr)
    host = args.host or config.gateway.host
    port = args.port or config.gateway.port
    app = create_app(config)
    if fleet is not None:
        from gateway.sandbox_admin import bp as sandbox_bp

        app.extensions["opacgw_sandbox"] = fleet
        app.register_blueprint(sandbox_bp)
    server = make_server(host, port, app, threaded=True, request_handler=QuietRequestHandler)
    if config.gateway.worker:  # watched accounts polled in this process (the sandbox's default)
        from gateway.watch.worker import Watcher

        Watcher(app.extensions["opacgw"]).start()
    if sandbox:
        print(_demo_banner(config, host, port), flush=True)
        print(_simulator_ports(fleet, moved), flush=True)
    else:
        print(f"OPAC Gateway serving {len(config.libraries)} libraries from {config.source} "
              f"on http://{host}:{port}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Poll watched accounts and deliver webhooks (as many processes as wanted: accounts and
    deliveries are leased rows in the store, never handled twice at once)."""
    from gateway.app import create_app
    from gateway.watch.worker import Watcher

    path = args.config or os.environ.get(ENV_CONFIG)
    config = load_config(path) if path else sandbox_config()
    _setup_logging(config.gateway.log_level)
    app = create_app(config)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"OPAC Gateway worker watching {len(config.libraries)} libraries", flush=True)
    try:
        Watcher(app.extensions["opacgw"]).run(stop)
    except KeyboardInterrupt:
        pass
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from werkzeug.serving import make_server

    from fixtures.registry import simulators
    from gateway.devserver import RequestHandler

    sims = simulators()
    if args.library not in sims:
        print(f"no simulator for {args.library!r}; known: {', '.join(sorted(sims))}", file=sys.stderr)
        return 2
    _setup_logging("INFO")
    app = sims[args.library](args.library, latency_ms=args.latency)
    server = make_server(args.host, args.port, app, threaded=True, request_handler=RequestHandler)
    cfg = sandbox_config().libraries.get(args.library)
    path = urlsplit(cfg.base_url).path if cfg else ""
    print(f"simulating {args.library} on http://{args.host}:{server.server_port}{path}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    if args.sandbox:
        sys.stdout.write(sandbox_toml())
        return 0
    from gateway.build import build_adapters

    try:
        cfg = load_config(args.check)
        adapters = build_adapters(cfg)  # the adapters check their own options, as at start
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    for adapter in adapters.values():
        adapter.close()
    print(f"{cfg.source}: OK, {len(cfg.libraries)} libraries: {', '.join(cfg.libraries)}")
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    """The gateway's tools over MCP stdio; they call the gateway at OPACGW_URL with OPACGW_TOKEN."""
    from gateway.mcp_tools import run_stdio

    from gateway import logs

    # stdout carries the protocol: log lines go to stderr, JSON, without the token
    logs.setup("WARNING", sys.stderr)
    if os.environ.get("OPACGW_TOKEN"):
        logs.remember(os.environ["OPACGW_TOKEN"], "token")
    run_stdio(url=args.url)
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    """opacgw db upgrade|version: the schema of the configured database."""
    from gateway.config import database_target
    from gateway.db import DatabaseUnavailable, describe_url, is_postgres, open_database
    from gateway.migrations import LATEST, current_version, upgrade

    path = args.config or os.environ.get(ENV_CONFIG)
    config = load_config(path) if path else sandbox_config()
    target, key = database_target(config.gateway)
    where = describe_url(target) if is_postgres(target) else target
    try:
        db = open_database(target)
    except DatabaseUnavailable:
        raise ConfigError(f"{config.source}: key {key!r}: cannot connect to PostgreSQL at {where}") from None
    try:
        if args.action == "version":
            print(f"{where}: schema version {current_version(db)} (this gateway: {LATEST})")
            return 0
        applied = upgrade(db)
        print(f"{where}: applied {', '.join(map(str, applied))}" if applied
              else f"{where}: schema already at version {LATEST}")
        return 0
    finally:
        db.close()


def cmd_probe(args: argparse.Namespace) -> int:
    """opacgw probe URL: the family, context path, charset and login form of a public OPAC."""
    from gateway.probe import ProbeFailed, probe

    try:
        result = probe(args.url, timeout=args.timeout)
    except ProbeFailed as exc:
        print(f"opacgw probe: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(result.report(args.id))
    return 0


def cmd_canary(args: argparse.Namespace) -> int:
    """opacgw canary: login, loans, holds, logout with each library's canary account."""
    from gateway import canary

    path = args.config or os.environ.get(ENV_CONFIG)
    config = load_config(path) if path else sandbox_config()
    if args.library and args.library not in config.libraries:
        print(f"opacgw canary: no library {args.library!r} in {config.source}", file=sys.stderr)
        return 2
    results = canary.run(config, args.library)
    if not results:
        print(f"opacgw canary: no library in {config.source} has a canary account "
              "(canary = {card_number = \"...\", password_env = \"NAME\"})", file=sys.stderr)
        return 2
    for r in results:
        print(r.line())
    if args.textfile:
        canary.write_textfile(args.textfile, results)
    return canary.exit_code(results)


def cmd_capture(args: argparse.Namespace) -> int:
    """opacgw capture --library ID PAGE...: log in, save the named screens scrubbed, with a manifest."""
    import getpass
    from pathlib import Path

    from gateway.capture import ENV_CARD, ENV_PASSWORD, CaptureError, capture
    from core.errors import GatewayError

    path = args.config or os.environ.get(ENV_CONFIG)
    config = load_config(path) if path else sandbox_config()
    lib = config.libraries.get(args.library)
    if lib is None:
        print(f"opacgw capture: no library {args.library!r} in {config.source}", file=sys.stderr)
        return 2
    card = os.environ.get(ENV_CARD) or input("card number: ").strip()
    password = os.environ.get(ENV_PASSWORD) or getpass.getpass("password: ")
    out = Path(args.out or f"capture-{lib.id}")
    try:
        pages = capture(config, lib, args.pages, out, card, password)
    except CaptureError as exc:
        print(f"opacgw capture: {exc}", file=sys.stderr)
        return 2
    except GatewayError as exc:
        print(f"opacgw capture: {lib.id}: {exc.code}: {exc.detail}", file=sys.stderr)
        return 1
    for p in pages:
        print(f"{out / p.file}  {p.screen}  {p.path}  {p.charset}")
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    from cryptography.fernet import Fernet

    print(Fernet.generate_key().decode())
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="opacgw", description="OPAC Gateway: one patron API for many libraries")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="serve the gateway (the embedded sandbox when no --config)")
    s.add_argument("--config", help=f"TOML configuration (default: ${ENV_CONFIG}, else the sandbox)")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--latency", type=int, default=0, metavar="MS", help="sandbox simulators' added latency")
    s.set_defaults(func=cmd_serve)

    w = sub.add_parser("worker", help="poll watched accounts and deliver their webhooks")
    w.add_argument("--config", help=f"TOML configuration (default: ${ENV_CONFIG}, else the sandbox)")
    w.set_defaults(func=cmd_worker)

    m = sub.add_parser("simulate", help="run one upstream simulator alone")
    m.add_argument("library")
    m.add_argument("--host", default="127.0.0.1")
    m.add_argument("--port", type=int, default=0)
    m.add_argument("--latency", type=int, default=0, metavar="MS")
    m.set_defaults(func=cmd_simulate)

    c = sub.add_parser("config", help="print the sandbox configuration, or check a file")
    g = c.add_mutually_exclusive_group(required=True)
    g.add_argument("--sandbox", action="store_true", help="print the sandbox configuration as TOML")
    g.add_argument("--check", metavar="FILE", help="validate a configuration file")
    c.set_defaults(func=cmd_config)

    mc = sub.add_parser("mcp", help="serve the gateway's tools to an assistant over MCP stdio "
                                    "(calls $OPACGW_URL with the session token $OPACGW_TOKEN)")
    mc.add_argument("--url", help="the gateway's URL (default: $OPACGW_URL, else http://127.0.0.1:8080)")
    mc.set_defaults(func=cmd_mcp)

    d = sub.add_parser("db", help="the database schema: upgrade (apply migrations) or version")
    d.add_argument("action", choices=["upgrade", "version"])
    d.add_argument("--config", help=f"TOML configuration (default: ${ENV_CONFIG}, else the sandbox)")
    d.set_defaults(func=cmd_db)

    pr = sub.add_parser("probe", help="name the portal family of a public OPAC URL and print a "
                                      "[libraries.<id>] stanza (no credentials; exit 2 if unknown)")
    pr.add_argument("url")
    pr.add_argument("--id", help="the library id of the stanza (default: from the host name)")
    pr.add_argument("--timeout", type=float, default=10.0)
    pr.set_defaults(func=cmd_probe)

    ca = sub.add_parser("canary", help="a read-only journey (login, loans, holds, logout) per library "
                                       "with a canary account: ok / drift / down (exit 1 drift, 3 down, "
                                       "4 canary error)")
    ca.add_argument("--library", help="only this library")
    ca.add_argument("--config", help=f"TOML configuration (default: ${ENV_CONFIG}, else the sandbox)")
    ca.add_argument("--textfile", metavar="FILE", help="also write opacgw_canary_ok{library} to this "
                                                       "Prometheus text file")
    ca.set_defaults(func=cmd_canary)

    cp = sub.add_parser("capture", help="log in and save the named screens (loans, holds, mylibrary, "
                                        "detail:<record>, ...) scrubbed, with a manifest; the card and "
                                        "password from a prompt or $OPACGW_CAPTURE_CARD/_PASSWORD")
    cp.add_argument("--library", required=True)
    cp.add_argument("--config", help=f"TOML configuration (default: ${ENV_CONFIG}, else the sandbox)")
    cp.add_argument("--out", help="the folder to write (default: capture-<library>)")
    cp.add_argument("pages", nargs="+", metavar="PAGE")
    cp.set_defaults(func=cmd_capture)

    k = sub.add_parser("keygen", help="print a new secret key for gateway.secret_key")
    k.set_defaults(func=cmd_keygen)

    try:
        sdi = importlib.import_module("gateway.sdi.cli")
    except ImportError:
        sdi = None
    if sdi is not None and hasattr(sdi, "add_subcommand"):
        sdi.add_subcommand(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
