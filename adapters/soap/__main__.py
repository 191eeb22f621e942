"""Check the SOAP mappings of a configuration: ``python -m adapters.soap [CONFIG] [--wsdl]``.

Validates every ``adapter = "soap"`` library's ``options`` (the gateway builds adapters
lazily, so a bad mapping would otherwise surface only on that library's first request).
With ``--wsdl`` it also loads each WSDL and checks the mapped operations exist in it.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

from pydantic import ValidationError

from adapters.soap.adapter import SoapAdapter
from core.config import ConfigError, LibraryConfig
from core.errors import GatewayError


def _soap_libraries(path: str) -> list[LibraryConfig]:
    """The ``adapter = "soap"`` libraries of a TOML file (the rest of the file is the gateway's)."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    out = []
    for lib_id, body in (data.get("libraries") or {}).items():
        if isinstance(body, dict) and body.get("adapter") == "soap":
            try:
                out.append(LibraryConfig.model_validate({"id": lib_id, **body}))
            except ValidationError as exc:
                raise ConfigError(f"{path}: library {lib_id!r}: {exc.errors()[0]['msg']}") from None
    return out


def main(argv: list[str]) -> int:
    load_wsdl = "--wsdl" in argv
    paths = [a for a in argv if not a.startswith("--")]
    if not paths:
        print("usage: python -m adapters.soap CONFIG.toml [--wsdl]", file=sys.stderr)
        return 2
    try:
        failed = 0
        for lib in _soap_libraries(paths[0]):
            adapter = SoapAdapter(lib)
            if load_wsdl:
                try:
                    adapter.wsdl_client()
                except GatewayError as exc:
                    print(f"{lib.id}: WSDL: {exc.detail}", file=sys.stderr)
                    failed += 1
                    continue
            print(f"{lib.id}: mapping OK" + (" (WSDL checked)" if load_wsdl else ""))
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
