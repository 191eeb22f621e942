"""`opacgw probe URL`: what portal a library's public OPAC URL serves, without credentials.

It reads the page (and, when the page has no login form, the few login links it
offers, or the family's usual login screen under the URL's path), recognises the
family by structure and prints a ready ``[libraries.<id>]`` stanza:

- **winj**: ``form[name=LoginForm]`` with ``txt_usercd`` / ``txt_password`` posting to
  a ``….do`` URL; the context path is the form action's path without ``/login.do``
  (``/winj/opac``, ``/kento/opac``, ``/opac``).  A first ``login.do`` without a session
  may land on the top page (``cold_login = "top"``); the probe then asks again with
  the session the first answer primed.
- **wo**: a form posting ``usr_id`` / ``usr_pw`` to ``…/opc_srh/usr_login``; the
  context path is what precedes ``/opc_srh/``.

Pages are decoded and read with the shared HTML kit (adapters/html.py).  An
unreachable URL, or a page of no known family, is ``ProbeFailed`` (exit 2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import httpx

from adapters import html
from core.errors import UpstreamChanged

#: the login screens tried under the URL's path when the page itself links to none
_GUESSES = ("login.do", "top.do", "opc_srh/usr_login")
#: how many pages one probe reads at most
MAX_PAGES = 8


class ProbeFailed(Exception):
    """The URL cannot be probed (unreachable, or no known portal): exit 2."""


@dataclass
class ProbeResult:
    family: str
    url: str  # the page the login form was found on
    context_path: str
    charset: str
    form_action: str
    fields: list[str]
    site_name: str = ""
    portal: dict[str, object] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}{self.context_path}"

    def library_id(self) -> str:
        host = (urlsplit(self.url).hostname or "").lower()
        labels = [p for p in host.split(".") if p and p not in ("www", "opac", "lib", "library")]
        raw = labels[0] if labels and not host.replace(".", "").isdigit() else "library"
        return re.sub(r"[^a-z0-9-]+", "-", raw).strip("-") or "library"

    def stanza(self, library_id: str | None = None) -> str:
        lid = library_id or self.library_id()
        name = (self.site_name or lid).replace("\\", "").replace('"', "'")
        lines = [f"[libraries.{lid}]", f'name = "{name}"', f'adapter = "{self.family}"',
                 f'base_url = "{self.base_url}"', 'timezone = "Asia/Tokyo"']
        if self.portal:
            inner = ", ".join(f"{k} = {_toml(v)}" for k, v in self.portal.items())
            lines.append(f"options = {{ portal = {{ {inner} }} }}")
        return "\n".join(lines) + "\n"

    def report(self, library_id: str | None = None) -> str:
        return (f"family:       {self.family}\n"
                f"context path: {self.context_path}\n"
                f"charset:      {self.charset}\n"
                f"login form:   {self.form_action} ({', '.join(self.fields)})\n"
                f"\n{self.stanza(library_id)}")


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class _Page:
    url: str
    decoded: html.Decoded
    tree: html.HTMLParser


def _fetch(client: httpx.Client, url: str) -> _Page | None:
    try:
        r = client.get(url)
    except httpx.HTTPError:
        return None
    if r.status_code >= 400 or "html" not in r.headers.get("content-type", "text/html"):
        return None
    try:
        decoded = html.decode_page(r.content, r.headers.get("content-type"), what="probe")
    except UpstreamChanged:
        return None
    return _Page(str(r.url), decoded, html.tree(decoded.text))


def _winj(page: _Page) -> ProbeResult | None:
    form = html.optional(page.tree, ('form[name="LoginForm"]', 'form[name=LoginForm]'))
    if form is None:
        return None
    names = [n.attributes.get("name") or "" for n in form.css("input, select, button")]
    if "txt_usercd" not in names or "txt_password" not in names:
        return None
    action = urljoin(page.url, form.attributes.get("action") or page.url)
    path = urlsplit(action).path
    if not path.endswith(".do"):
        return None
    context = re.sub(r"/+", "/", path.rsplit("/", 1)[0]) or "/"
    portal: dict[str, object] = {}
    button = html.optional(form, ('input[name="submit_btn_login"]', 'button[name="submit_btn_login"]'))
    caption = html.clean((button.attributes.get("value") if button else None) or "")
    if caption and caption != "ログイン":
        portal["login_button"] = caption
    if html.py_codec(page.decoded.charset) != "utf-8":
        portal["charset"] = page.decoded.charset
    site = html.optional_text(page.tree, ("p.site-name", "#header .site-name"))
    return ProbeResult("winj", page.url, context, page.decoded.charset, urlsplit(action).path,
                       [n for n in names if n], site or _title_site(page), portal)


def _wo(page: _Page) -> ProbeResult | None:
    for form in page.tree.css("form"):
        names = [n.attributes.get("name") or "" for n in form.css("input, select, button")]
        if "usr_id" not in names or "usr_pw" not in names:
            continue
        action = urlsplit(urljoin(page.url, form.attributes.get("action") or page.url)).path
        if "/opc_srh/" not in action:
            continue
        context = action.split("/opc_srh/", 1)[0] or "/"
        return ProbeResult("wo", page.url, context, page.decoded.charset, action,
                           [n for n in names if n], _title_site(page))
    return None


def _title_site(page: _Page) -> str:
    title = html.optional_text(page.tree, "title") or ""
    return title.split("|", 1)[1].strip() if "|" in title else title


def _login_links(page: _Page) -> list[str]:
    out = []
    for a in page.tree.css("a[href]"):
        href = a.attributes.get("href") or ""
        label = html.text(a)
        if re.search(r"(login\.do|usr_login)", href) or "ログイン" in label:
            out.append(urljoin(page.url, href))
    return out


def _directory(url: str) -> str:
    """The folder a URL's page is in: ``…/opac/top.do`` → ``…/opac/``; ``…/opac`` → ``…/opac/``."""
    parts = urlsplit(url)
    path = parts.path or "/"
    if not path.endswith("/"):
        path = path.rsplit("/", 1)[0] + "/" if "." in path.rsplit("/", 1)[1] else path + "/"
    return f"{parts.scheme}://{parts.netloc}{path}"


def probe(url: str, *, timeout: float = 10.0) -> ProbeResult:
    """Probe one public OPAC URL; ``ProbeFailed`` when unreachable or unknown."""
    if not url.startswith(("http://", "https://")):
        raise ProbeFailed(f"{url}: not an http:// or https:// URL")
    with httpx.Client(follow_redirects=True, timeout=timeout,
                      headers={"User-Agent": "opacgw-probe"}) as client:
        try:
            client.get(url)  # reachability (and the session a cold login.do wants)
        except httpx.HTTPError as exc:
            raise ProbeFailed(f"{url}: unreachable ({type(exc).__name__}: {exc})") from None
        base = _directory(url)
        queue = [url]
        seen: set[str] = set()
        cold = False
        while queue and len(seen) < MAX_PAGES:
            target = queue.pop(0)
            if target in seen:
                continue
            seen.add(target)
            page = _fetch(client, target)
            if page is None:
                if target == url:
                    queue += [urljoin(base, g) for g in _GUESSES]
                continue
            found = _winj(page) or _wo(page)
            if found is not None:
                if cold and found.family == "winj":
                    found.portal["cold_login"] = "top"
                return found
            links = _login_links(page)
            if "login.do" in urlsplit(target).path and any("login.do" in link for link in links):
                cold = True  # login.do answered the top page: ask again, primed
                seen.discard(links[0])
            queue = links + queue + ([urljoin(base, g) for g in _GUESSES] if target == url else [])
    raise ProbeFailed(f"{url}: no known OPAC portal (winj, wo) found: no login form of either family "
                      f"on the page or the login screens it links to")
