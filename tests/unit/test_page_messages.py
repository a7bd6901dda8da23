"""Every text the pages mark for translation has its English in the message catalogue."""

from __future__ import annotations

from pathlib import Path

from jinja2.ext import babel_extract

import adapters.web
from adapters.web.i18n import catalogue_of
from adapters.web.pages import NAVIGATION

WEB = Path(adapters.web.__file__).parent


def test_every_marked_text_of_every_template_has_its_english() -> None:
    english = catalogue_of()
    missing = []
    templates = sorted((WEB / "templates").glob("*.html"))
    assert templates
    for template in templates:
        with template.open("rb") as source:
            for _, _, message, _ in babel_extract(source, ["_", "gettext"], [], {}):
                if message is None:
                    continue  # a name, not a text: its values are checked below
                text = message if isinstance(message, str) else message[0]
                if text not in english or not english[text].string:
                    missing.append(f"{template.name}: {text}")
    for pages in NAVIGATION.values():
        missing += [f"navigation: {label}" for _, label in pages
                    if label not in english or not english[label].string]
    assert missing == []
