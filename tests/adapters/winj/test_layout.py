"""The per-library layout of the winj family is data (``adapters/winj/layout.py``,
``[libraries.<id>.options.portal]``): validated when the adapter is built, read by the
simulator and the adapter alike."""

from __future__ import annotations

from datetime import date

import pytest

from adapters.winj import WinjAdapter
from adapters.winj.layout import PortalLayout, WinjOptions, context_paths, layout_of
from gateway.config import sandbox_config

LIBS = ("kumamoto-city", "kagoshima-pref", "amami", "niigata-city")


def test_a_misspelt_layout_key_is_a_configuration_error() -> None:
    lib = sandbox_config().libraries["kumamoto-city"]
    bad = lib.model_copy(update={"options": {"portal": {"due_lable": "返却期限"}}})
    with pytest.raises(Exception, match="due_lable"):
        WinjAdapter(bad)
    worse = lib.model_copy(update={"options": {"portal": {"rank_format": "N番目"}}})
    with pytest.raises(Exception, match="rank_format"):
        WinjAdapter(worse)


def test_the_sandbox_libraries_differ_along_the_axes_real_sites_do() -> None:
    cfg = sandbox_config()
    layouts = {lib: layout_of(cfg.libraries[lib].options) for lib in LIBS}
    assert len({lay.due_label for lay in layouts.values()}) == 3
    assert {lay.date_sep for lay in layouts.values()} == {"/", "."}
    assert any(not lay.date_pad for lay in layouts.values())
    assert {lay.status_colon for lay in layouts.values()} == {":", "："}
    assert {lay.rank_format for lay in layouts.values()} == {"paren", "junban", "yoyakuchu"}
    assert len({lay.page_size for lay in layouts.values()}) == 2
    assert {lay.type_prefix for lay in layouts.values()} == {"inside", "sibling"}
    assert [lay.charset for lay in layouts.values()].count("UTF-8") == 3
    assert {context_paths(cfg.libraries[lib].base_url)[0] for lib in LIBS} == {"/winj/opac", "/kento/opac", "/opac"}
    adapter = WinjAdapter(cfg.libraries["amami"])
    assert isinstance(adapter.options, WinjOptions) and adapter.layout == layouts["amami"]
    adapter.close()


@pytest.mark.parametrize(("url", "module", "root"), [
    ("http://h/winj/opac", "/winj/opac", "/winj"), ("http://h/kento/opac/", "/kento/opac", "/kento"),
    ("http://h/opac", "/opac", ""), ("http://h/winj//opac", "/winj/opac", "/winj"),
    ("http://h/kentosyo2/opac", "/kentosyo2/opac", "/kentosyo2"),
])
def test_context_paths(url: str, module: str, root: str) -> None:
    assert context_paths(url) == (module, root)


def test_date_formats() -> None:
    d = date(2026, 12, 6)
    assert PortalLayout().fmt_date(d) == "2026/12/06"
    assert PortalLayout(date_sep=".").fmt_date(d) == "2026.12.06"
    assert PortalLayout(date_pad=False).fmt_date(d) == "2026/12/6"
