"""An upload's type is what a parser of that type reads through, not what its first bytes
say: truncated files, polyglots, archives carrying programs and bombs are refused."""

from __future__ import annotations

import io
import zipfile

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from adapters.formats import ACCEPTED_TYPES, UnsupportedContent, identify
from adapters.samples import sample_pdf, sample_png


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 30, 30)).save(out, "JPEG")
    return out.getvalue()


def _zip(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def _ofd() -> bytes:
    return _zip({"OFD.xml": b"<ofd:OFD xmlns:ofd='http://www.ofdspec.org/2016'/>",
                 "Doc_0/Document.xml": b"<ofd:Document/>"})


def _identify(data: bytes, declared: str | None) -> str:
    return identify(io.BytesIO(data), declared)


@pytest.mark.parametrize(
    ("data", "declared", "expected"),
    [
        (sample_pdf(), "application/pdf", "application/pdf"),
        (sample_png(), "image/png", "image/png"),
        (_jpeg(), "image/jpeg", "image/jpeg"),
        (_ofd(), "application/ofd", "application/ofd"),
        (_zip({"scan.pdf": sample_pdf()}), "application/zip", "application/zip"),
        (sample_pdf(), None, "application/pdf"),
        (sample_png(), "application/octet-stream", "image/png"),
        (sample_png(), "IMAGE/PNG", "image/png"),
    ],
)
def test_real_files_of_each_type_are_accepted(
    data: bytes, declared: str | None, expected: str
) -> None:
    assert _identify(data, declared) == expected


def _polyglot() -> bytes:
    """A PDF with a ZIP carrying a program appended: PDF viewers read from the front, ZIP
    readers from the back."""
    return sample_pdf() + _zip({"invoice.exe": b"MZ\x90\x00" + b"\x00" * 60})


def _bomb() -> bytes:
    return _zip({"OFD.xml": b"<a/>", "Doc_0/page.xml": b"\x00" * (50 * 1024 * 1024)})


def _huge_png() -> bytes:
    out = io.BytesIO()
    Image.new("1", (9000, 9000)).save(out, "PNG")  # 81 M pixels, a small file
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "declared", "problem"),
    [
        (b"%PDF-1.7\n not really a pdf", "application/pdf", "not a readable PDF"),
        (sample_pdf()[: len(sample_pdf()) // 2], "application/pdf", "not a readable PDF"),
        (sample_png()[:40], "image/png", "not a readable PNG"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 100, "image/jpeg", "not a readable JPEG"),
        (sample_png(), "image/jpeg", "declared image/jpeg"),
        (sample_pdf(), "text/html", "not accepted"),
        (b"<html><script>alert(1)</script>", None, "not a PDF, PNG"),
        (_polyglot(), "application/pdf", "polyglot"),
        (sample_png() + _zip({"a.txt": b"x"}), "image/png", "polyglot"),
        (_zip({"OFD.xml": b"<a/>", "run.exe": b"x"}), "application/ofd", "program"),
        (_zip({"OFD.xml": b"<a/>", "Res/x.dat": b"MZ\x90\x00"}), "application/ofd", "program"),
        (_zip({"OFD.xml": b"<a/>", "Res/go": b"#!/bin/sh\nrm -rf /"}), "application/ofd",
         "program"),
        (_zip({"../../etc/cron.d/x": b"x"}), "application/zip", "escapes"),
        (_zip({"/etc/passwd": b"x"}), "application/zip", "escapes"),
        (_zip({"Doc_0/Document.xml": b"<a/>"}), "application/ofd", "OFD.xml"),
        (_bomb(), "application/ofd", "bomb"),
        (b"PK\x03\x04" + b"\x00" * 40, "application/zip", "not a readable ZIP"),
        (_huge_png(), "image/png", "pixels"),
    ],
    ids=[
        "pdf-header-only", "truncated-pdf", "truncated-png", "jpeg-header-only",
        "png-declared-jpeg", "html-declared", "html-undeclared", "pdf-zip-polyglot",
        "png-zip-polyglot", "ofd-with-exe", "ofd-with-pe-bytes", "ofd-with-script",
        "zip-slip", "zip-absolute", "ofd-without-root", "zip-bomb", "broken-zip",
        "decompression-bomb-png",
    ],
)
def test_files_that_are_not_what_they_claim_are_refused(
    data: bytes, declared: str, problem: str
) -> None:
    with pytest.raises(UnsupportedContent, match=problem):
        _identify(data, declared)


@given(
    head=st.sampled_from([b"%PDF-1.4\n", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"PK\x03\x04",
                          b""]),
    body=st.binary(max_size=2048),
    declared=st.sampled_from([*ACCEPTED_TYPES, None, "application/octet-stream"]),
)
def test_any_bytes_either_identify_or_are_refused_cleanly(
    head: bytes, body: bytes, declared: str | None
) -> None:
    """Whatever arrives, the answer is a type of the list or UnsupportedContent, never
    another exception (which would be a 500) — and the file is left rewound."""
    file = io.BytesIO(head + body)
    try:
        found = identify(file, declared)
    except UnsupportedContent:
        pass
    else:
        assert found in ACCEPTED_TYPES
    assert file.tell() == 0

