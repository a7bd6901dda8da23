"""Words and dates in the reader's language: zh-CN by default (the templates are written in
it), English from the message catalogues ``locale/en/LC_MESSAGES/*.po`` (gettext, read with
Babel: ``messages.po`` for what every page shares, one more for each actor's pages), chosen
by a toggle that a cookie remembers."""

from __future__ import annotations

import io
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Literal

from babel.dates import format_date, format_datetime
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

from vault.workdays import CHINA

Language = Literal["zh", "en"]
LANGUAGES: tuple[Language, ...] = ("zh", "en")
LOCALES = {"zh": "zh_CN", "en": "en"}
_CATALOGUES = Path(__file__).parent / "locale"


@cache
def translations(language: Language) -> NullTranslations:
    """The catalogue of a language; Chinese, the templates' own, needs none."""
    if language == "zh":
        return NullTranslations()
    catalogue = catalogue_of(language)
    compiled = io.BytesIO()
    write_mo(compiled, catalogue)
    compiled.seek(0)
    return Translations(compiled)


def catalogue_of(language: Language = "en") -> Catalog:
    """Every message catalogue of a language, read as one."""
    merged = Catalog(locale=LOCALES[language])
    for path in sorted((_CATALOGUES / language / "LC_MESSAGES").glob("*.po")):
        with path.open("rb") as po:
            for message in read_po(po, locale=LOCALES[language]):
                if message.id:
                    merged[message.id] = message
    return merged


def when(moment: datetime | None, language: Language) -> str:
    """A moment in China time, as the reader's locale writes it."""
    if moment is None:
        return ""
    return format_datetime(moment.astimezone(CHINA), "medium", tzinfo=CHINA,
                           locale=LOCALES[language])


def day(moment: datetime | None, language: Language) -> str:
    """The day of a moment in China time, as the reader's locale writes it."""
    if moment is None:
        return ""
    return format_date(moment.astimezone(CHINA).date(), "long", locale=LOCALES[language])


def language_of(cookie: str | None) -> Language:
    return "en" if cookie == "en" else "zh"
