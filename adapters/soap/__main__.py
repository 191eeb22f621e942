"""Check the SOAP mappings of a configuration: ``python -m adapters.soap [CONFIG] [--wsdl]``.

Validates every ``adapter = "soap"`` library's ``options`` (the gateway builds adapters
lazily, so a bad mapping would otherwise surface only on that library's first request).
With ``--wsdl`` it also loads each WSDL and checks the mapped operations exist in it.
"""

from __future__ import annotations

import sys

from adapters.soap.adapter import SoapAdapter
from gateway.config import ConfigError, load_config
from gateway.errors import GatewayError


def main(argv: list[str]) -> int:
    load_wsdl = "--wsdl" in argv
    paths = [a for a in argv if not a.startswith("--")]
    try:
        cfg = load_config(paths[0] if paths else None)
        failed = 0
        for lib in cfg.libraries.values():
            if lib.adapter != "soap":
                continue
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
