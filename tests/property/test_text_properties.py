"""The text rule has two faces that must agree: the check the services run, and the
pattern the OpenAPI document publishes for clients (and schemathesis) to generate from."""

from __future__ import annotations

import re

from hypothesis import example, given
from hypothesis import strategies as st

from vault.errors import InvalidInput
from vault.inputs import check_text, printable_text_pattern

PATTERN = re.compile(printable_text_pattern())
LONG = 10_000


def _accepted(text: str) -> bool:
    try:
        check_text("title", text, LONG)
    except InvalidInput:
        return False
    return True


@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40))
@example("居民身份证")
@example("证明\u202egpj.exe")
@example("\u00a0\u3000")  # only white space, of other scripts
@example("\U000e0041")  # a tag character (Cf) beyond the BMP
@example("\U0010fffd")  # private use, plane 16
def test_the_published_pattern_accepts_exactly_what_the_check_accepts(text: str) -> None:
    assert bool(PATTERN.fullmatch(text)) == _accepted(text)


@given(st.text(max_size=10), st.sampled_from(["\ud800", "\udbff", "\udfff"]))
def test_a_lone_surrogate_is_refused_by_the_check(text: str, surrogate: str) -> None:
    """The one difference, by design: no pattern engine can name a surrogate."""
    assert not _accepted(text + surrogate)
