"""The header lights up the tab a page belongs to: the tab itself, or the longest tab the
page lies under."""

from __future__ import annotations

from adapters.web.pages import current_tab


def test_a_page_lights_up_its_own_tab_or_the_one_it_lies_under() -> None:
    assert current_tab("/me", "resident") == "/me"
    assert current_tab("/me/consents", "resident") == "/me/consents"
    assert current_tab("/me/applications/1234", "resident") == "/me/applications"
    assert current_tab("/me/documents/1/withdraw", "resident") == "/me"
    assert current_tab("/work/fetch/r/d", "officer") == "/work/fetch"
    assert current_tab("/work/applications/x", "officer") == "/work"
    assert current_tab("/window/applications/x", "clerk") == "/window"


def test_no_tab_lights_up_for_a_page_of_no_tab_or_someone_not_signed_in() -> None:
    assert current_tab("/merge", "resident") is None  # not under /me
    assert current_tab("/signin", "resident") is None
    assert current_tab("/me", None) is None
    assert current_tab("/work", "resident") is None
