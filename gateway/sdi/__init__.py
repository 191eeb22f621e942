"""SDI (新着図書お知らせ) for libraries without their own: MARC feeds → alert matches.

``feed`` reads ISO 2709 / MARCXML / OAI-PMH, ``fields`` extracts what alerts match
on, ``normalize`` is the text normalisation, ``engine`` matches all alerts in one
pass per feed (Aho–Corasick), ``reference`` is the plain semantics the engine is
tested against, ``store`` keeps gateway alerts and matches in the gateway database,
``harvest`` fetches configured feeds, ``cli`` is ``opacgw sdi``.
"""
