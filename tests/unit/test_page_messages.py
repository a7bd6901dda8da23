"""Every text the pages mark for translation has its English in the message catalogue."""

from __future__ import annotations

from pathlib import Path

from babel.messages.pofile import read_po
from jinja2.ext import babel_extract

import adapters.web

WEB = Path(adapters.web.__file__).parent


def test_every_marked_text_of_every_template_has_its_english() -> None:
    with (WEB / "locale" / "en" / "LC_MESSAGES" / "messages.po").open("rb") as po:
        english = read_po(po, locale="en")
    missing = []
    templates = sorted((WEB / "templates").glob("*.html"))
    assert templates
    for template in templates:
        with template.open("rb") as source:
            for _, _, message, _ in babel_extract(source, ["_", "gettext"], [], {}):
                text = message if isinstance(message, str) else message[0]
                if text not in english or not english[text].string:
                    missing.append(f"{template.name}: {text}")
    assert missing == []
