"""Bookshelves (本棚) on the winj portal: list, create, rename, delete, items, add /
remove / move / copy an item, export.  Every final step is never repeated on a timeout:
the state is re-read.  Evidence is silent on these screens (REAL_WINJ.md): they follow
the seed guides (a name ≤ 32 characters, ≤ 1,000 items a shelf).

Upstream requests with a warm session: shelves 1, create shelf 2, rename shelf 1,
delete shelf 2, shelf items ⌈n/100⌉ (min 1), add/remove/move/copy item 2, export 1."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from adapters.base import UpstreamSession, translate_transport_errors
from adapters.winj import account_pages as ap
from core.errors import (
    InvalidRequest,
    NotFound,
    UpstreamChanged,
)
from core.models import (
    Shelf,
    ShelfItem,
)

from adapters.winj.account_base import (
    SHELF_NAME_MAX,
    SHELF_PAGE,
    TXT_SHELF_DONE,
    WinjAccountBase,
)

if TYPE_CHECKING:
    pass



class WinjShelves(WinjAccountBase):
    """The winj bookshelves (本棚)."""

    # ================================================================ shelves
    def _acct_shelf_list(self, client: httpx.Client, session: UpstreamSession) -> list[Shelf]:
        return ap.parse_shelves(self._get(client, session, ap.SHELF_LIST_PATH).tree, self.library.id)

    def _acct_encodable(self, session: UpstreamSession, field: str, *texts: str | None) -> None:
        """A Shift_JIS / EUC-JP portal cannot store characters outside its charset
        (the form would carry &#NNNN; and the portal would keep that text)."""
        from adapters.winj.pages import py_codec

        charset = self._charset(session)
        for text in texts:
            try:
                (text or "").encode(py_codec(charset))
            except UnicodeEncodeError as exc:
                raise InvalidRequest(f"{field}: {(text or '')[exc.start:exc.end]!r} cannot be stored by the library "
                                     f"(its pages are {charset})", library=self.library.id,
                                     errors=[{"field": field, "message": f"not representable in {charset}"}]) from None
            except LookupError:
                return

    def _acct_check_name(self, name: str, session: UpstreamSession) -> str:
        self._acct_encodable(session, "name", name)
        name = name.strip()
        if not name or len(name) > SHELF_NAME_MAX:
            raise InvalidRequest(f"a shelf name has 1 to {SHELF_NAME_MAX} characters", library=self.library.id,
                                 errors=[{"field": "name", "max_length": SHELF_NAME_MAX}])
        return name

    @staticmethod
    def _acct_shelf_no(shelf_id: str, lib: str) -> str:
        if not shelf_id.isdigit():
            raise NotFound(f"no shelf {shelf_id!r}", library=lib)
        return shelf_id

    @translate_transport_errors
    def shelves(self, session: UpstreamSession) -> list[Shelf]:
        with self.open(session) as client:
            return self._acct_shelf_list(client, session)

    @translate_transport_errors
    def create_shelf(self, session: UpstreamSession, name: str) -> Shelf:
        name = self._acct_check_name(name, session)
        lib = self.library.id
        with self._serial(session), self.open(session) as client:
            confirm = self._post(client, session, ap.SHELF_CREATE_CONFIRM_PATH, [("txt_name", name)])
            if confirm.tree.css_first(ap.SEL_SHELF_CONFIRM) is None:
                raise self._acct_refusal(confirm, what="create shelf")
            if [i.title for i in ap.parse_confirm_items(confirm.tree, lib)] != [name]:
                raise UpstreamChanged("本棚作成確認 does not show the name asked for", library=lib)
            done = self._acct_commit(
                client, session, ap.SHELF_CREATE_PATH, [("btn_commit", "登録")], what="create shelf",
                recheck=lambda: any(x.name == name for x in self._acct_shelf_list(client, session)))
            if done is None:
                listed = self._acct_shelf_list(client, session)
            else:
                self._acct_expect(done, TXT_SHELF_DONE["create"], what="create shelf")
                listed = ap.parse_shelves(done.tree, lib)
            for shelf in listed:
                if shelf.name == name:
                    return shelf
        raise UpstreamChanged("the new shelf is not in 本棚一覧", library=lib)

    @translate_transport_errors
    def rename_shelf(self, session: UpstreamSession, shelf_id: str, name: str) -> Shelf:
        name = self._acct_check_name(name, session)
        lib = self.library.id
        no = self._acct_shelf_no(shelf_id, lib)
        with self._serial(session), self.open(session) as client:
            done = self._acct_commit(
                client, session, ap.SHELF_RENAME_PATH, [("hid_shelf", no), ("txt_name", name), ("btn_regist", "登録")],
                what="rename shelf",
                recheck=lambda: any(x.id == no and x.name == name for x in self._acct_shelf_list(client, session)))
            if done is None:
                listed = self._acct_shelf_list(client, session)
            else:
                self._acct_expect(done, TXT_SHELF_DONE["rename"], what="rename shelf")
                listed = ap.parse_shelves(done.tree, lib)
            for shelf in listed:
                if shelf.id == no:
                    return shelf
        raise UpstreamChanged("the renamed shelf is not in 本棚一覧", library=lib)

    @translate_transport_errors
    def delete_shelf(self, session: UpstreamSession, shelf_id: str) -> None:
        lib = self.library.id
        no = self._acct_shelf_no(shelf_id, lib)
        with self._serial(session), self.open(session) as client:
            confirm = self._post(client, session, ap.SHELF_DELETE_CONFIRM_PATH, [("chk_shelf", no),
                                                                                 ("btn_delete", "削除")])
            if confirm.tree.css_first(ap.SEL_SHELF_CONFIRM) is None:
                raise self._acct_refusal(confirm, what="delete shelf")
            if len(ap.parse_confirm_items(confirm.tree, lib)) != 1:
                raise UpstreamChanged("本棚削除確認 does not list exactly the shelf asked for", library=lib)
            done = self._acct_commit(
                client, session, ap.SHELF_DELETE_PATH, [("btn_commit", "削除")], what="delete shelf",
                recheck=lambda: all(x.id != no for x in self._acct_shelf_list(client, session)))
            if done is None:
                return
            self._acct_expect(done, TXT_SHELF_DONE["delete"], what="delete shelf")
            if any(s.id == no for s in ap.parse_shelves(done.tree, lib)):
                raise UpstreamChanged("the shelf is still listed after 削除", library=lib)

    @translate_transport_errors
    def shelf_items(self, session: UpstreamSession, shelf_id: str) -> list[ShelfItem]:
        lib = self.library.id
        no = self._acct_shelf_no(shelf_id, lib)
        with self.open(session) as client:
            return self._acct_items(client, session, no)

    def _acct_items(self, client: httpx.Client, session: UpstreamSession, no: str) -> list[ShelfItem]:
        items: list[ShelfItem] = []
        page_no = 1
        while True:
            page = self._get(client, session, ap.SHELF_DETAIL_PATH,
                             [("shelf", no), ("page", str(page_no)), ("disp", str(SHELF_PAGE))])
            if page.tree.css_first(ap.SEL_SHELF_HEADING) is None:
                raise self._acct_refusal(page, what="shelf items")
            got = ap.parse_shelf_items(page.tree, self.library.id)
            items.extend(got.items)
            if not got.items or page_no * SHELF_PAGE >= got.total:
                return items
            page_no += 1

    def _acct_on_shelf(self, client: httpx.Client, session: UpstreamSession, no: str, record_id: str) -> bool:
        return any(i.record_id == record_id for i in self._acct_items(client, session, no))

    def _acct_item_action(self, session: UpstreamSession, shelf_id: str, record_id: str, button: tuple[str, str],
                          done_key: str, extra: list[tuple[str, str]] | None = None,
                          dest: str | None = None) -> ap.ConfirmItem:
        lib = self.library.id
        no = self._acct_shelf_no(shelf_id, lib)
        with self._serial(session), self.open(session) as client:
            confirm = self._post(client, session, ap.SHELF_ITEM_CONFIRM_PATH,
                                 [("hid_shelf", no), ("chk_bib", record_id), button] + (extra or []))
            if confirm.tree.css_first(ap.SEL_SHELF_CONFIRM) is None:
                raise self._acct_refusal(confirm, what=f"{done_key} shelf item")
            listed = ap.parse_confirm_items(confirm.tree, lib)
            if len(listed) != 1:
                raise UpstreamChanged("the confirm screen does not list exactly the item asked for", library=lib)

            def recheck() -> bool:
                on_source = self._acct_on_shelf(client, session, no, record_id)
                if done_key == "remove":
                    return not on_source
                arrived = dest is not None and self._acct_on_shelf(client, session, dest, record_id)
                return arrived and (done_key == "copy" or not on_source)

            done = self._acct_commit(client, session, ap.SHELF_ITEM_COMMIT_PATH, [("btn_commit", button[1])],
                                     recheck=recheck, what=f"{done_key} shelf item")
            if done is not None:
                self._acct_expect(done, TXT_SHELF_DONE[done_key], what=f"{done_key} shelf item")
            return listed[0]

    @translate_transport_errors
    def add_shelf_item(self, session: UpstreamSession, shelf_id: str, record_id: str) -> ShelfItem:
        lib = self.library.id
        no = self._acct_shelf_no(shelf_id, lib)
        with self._serial(session), self.open(session) as client:
            confirm = self._post(client, session, ap.SHELF_ADD_CONFIRM_PATH,
                                 [("bibid", record_id), ("rdo_shelf", no), ("btn_select", "選択確定")])
            if confirm.tree.css_first(ap.SEL_SHELF_CONFIRM) is None:
                raise self._acct_refusal(confirm, what="add shelf item")
            listed = ap.parse_confirm_items(confirm.tree, lib)
            if len(listed) != 1:
                raise UpstreamChanged("本棚資料登録確認 does not list exactly one record", library=lib)
            done = self._acct_commit(client, session, ap.SHELF_ADD_PATH, [("btn_commit", "選択確定")],
                                     recheck=lambda: self._acct_on_shelf(client, session, no, record_id),
                                     what="add shelf item")
            if done is not None:
                self._acct_expect(done, TXT_SHELF_DONE["add"], what="add shelf item")
        item = listed[0]
        return ShelfItem(record_id=record_id, title=item.title, author=ap._author(item.title, item.bibline),
                         added_on=self.today())

    @translate_transport_errors
    def remove_shelf_item(self, session: UpstreamSession, shelf_id: str, record_id: str) -> None:
        self._acct_item_action(session, shelf_id, record_id, ("btn_delete", "削除"), "remove")

    @translate_transport_errors
    def move_shelf_item(self, session: UpstreamSession, shelf_id: str, record_id: str, to_shelf_id: str,
                        copy: bool) -> None:
        lib = self.library.id
        if to_shelf_id == shelf_id:
            raise InvalidRequest("to_shelf_id is the shelf the item is on", library=lib)
        dest = self._acct_shelf_no(to_shelf_id, lib)
        button = ("btn_copy", "複写") if copy else ("btn_move", "移動")
        self._acct_item_action(session, shelf_id, record_id, button, "copy" if copy else "move",
                               extra=[("cmb_dest", dest)], dest=dest)

    @translate_transport_errors
    def export_shelf(self, session: UpstreamSession, shelf_id: str) -> str:
        lib = self.library.id
        no = self._acct_shelf_no(shelf_id, lib)
        with self.open(session) as client:
            page = self._get(client, session, ap.SHELF_DOWNLOAD_PATH, [("shelf", no)])
        if not page.html.lstrip("\ufeff").startswith(ap.DOWNLOAD_HEADER):
            raise self._acct_refusal(page, what="export shelf")
        return ap.shelf_download_to_csv(page.html.lstrip("\ufeff"), lib)
