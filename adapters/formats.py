"""What an uploaded file really is: its declared type checked by a parser of that type,
not by its first bytes alone.

A PNG or JPEG must open and decode with Pillow, within a pixel budget; a PDF must open
with pypdf and give its page count; a ZIP (and an OFD, a ZIP holding ``OFD.xml``) must
have a central directory ``zipfile`` reads, members with safe names, a bounded expanded
size, and no executable among them. A PDF or image that is also a ZIP archive (a
polyglot: a viewer shows one thing, an unpacker finds another) is refused, as is a ZIP
that also opens as a PDF.
"""

from __future__ import annotations

import warnings
import zipfile
from collections.abc import Callable
from typing import IO

from PIL import Image
from pypdf import PdfReader

MAX_PIXELS = 64_000_000
"""The largest image decoded: an 8,000 × 8,000 scan; a decompression bomb is larger."""
MAX_ARCHIVE_MEMBERS = 10_000
MAX_EXPANDED_BYTES = 1024 * 1024 * 1024
"""What an archive's members may expand to in all."""
MAX_RATIO = 200
"""How many times its compressed size a member may expand to."""
EXECUTABLE_SUFFIXES = frozenset({
    ".exe", ".dll", ".com", ".scr", ".msi", ".bat", ".cmd", ".ps1", ".vbs", ".vbe", ".js",
    ".jse", ".wsf", ".hta", ".jar", ".apk", ".sh", ".elf", ".so", ".dylib", ".lnk",
})
_EXECUTABLE_HEADS = (b"MZ", b"\x7fELF", b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe", b"#!")
_SIGNATURES = {
    "application/pdf": b"%PDF-",
    "image/png": b"\x89PNG\r\n\x1a\n",
    "image/jpeg": b"\xff\xd8\xff",
    "application/zip": b"PK\x03\x04",
}
ACCEPTED_TYPES = (
    "application/pdf", "image/png", "image/jpeg", "application/ofd", "application/zip",
)


class UnsupportedContent(Exception):
    """The file is not of the type it claims (or of any type accepted); the message says
    what is wrong, for the sender."""


def identify(file: IO[bytes], declared: str | None) -> str:
    """The file's media type, once a parser of that type has read it through: the declared
    one, or (declared none or ``application/octet-stream``) the one its first bytes name.
    :class:`UnsupportedContent` otherwise. Leaves the file rewound."""
    try:
        file.seek(0)
        head = file.read(16)
        wanted = (declared or "").lower()
        if wanted in ("", "application/octet-stream"):
            wanted = next((t for t, sig in _SIGNATURES.items() if head.startswith(sig)), "")
            if not wanted:
                raise UnsupportedContent("the file is not a PDF, PNG, JPEG or OFD/ZIP document")
        if wanted not in ACCEPTED_TYPES:
            raise UnsupportedContent(
                f"{wanted} is not accepted; send one of {', '.join(ACCEPTED_TYPES)}"
            )
        signature = _SIGNATURES["application/zip" if wanted == "application/ofd" else wanted]
        if not head.startswith(signature):
            raise UnsupportedContent(f"the file was declared {wanted} but its bytes are not")
        _CHECKS[wanted](file)
        return wanted
    finally:
        file.seek(0)


def _image(kind: str) -> Callable[[IO[bytes]], None]:
    def check(file: IO[bytes]) -> None:
        _not_an_archive(file, kind)
        for step in ("verify", "load"):  # verify checks the structure; load decodes
            file.seek(0)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("error", Image.DecompressionBombWarning)
                    with Image.open(file, formats=[kind]) as image:
                        if image.width * image.height > MAX_PIXELS:
                            raise UnsupportedContent(
                                f"the image has over {MAX_PIXELS:,} pixels"
                            )
                        getattr(image, step)()
            except UnsupportedContent:
                raise
            except Exception as e:  # any failure of the decoder is a file it cannot read
                raise UnsupportedContent(f"the file is not a readable {kind} image") from e

    return check


def _pdf(file: IO[bytes]) -> None:
    _not_an_archive(file, "PDF")
    file.seek(0)
    try:
        reader = PdfReader(file, strict=False)
        if reader.is_encrypted:
            raise UnsupportedContent("the PDF is encrypted; send it without a password")
        pages = len(reader.pages)
    except UnsupportedContent:
        raise
    except Exception as e:  # pypdf's errors, and what a hostile file makes it raise
        raise UnsupportedContent("the file is not a readable PDF") from e
    if pages < 1:
        raise UnsupportedContent("the PDF has no pages")


def _not_an_archive(file: IO[bytes], kind: str) -> None:
    file.seek(0)
    if zipfile.is_zipfile(file):
        raise UnsupportedContent(f"the {kind} is also a ZIP archive (a polyglot file)")


def _archive(ofd: bool) -> Callable[[IO[bytes]], None]:
    def check(file: IO[bytes]) -> None:
        file.seek(0)
        if b"%PDF-" in file.read(1024):
            raise UnsupportedContent("the archive is also a PDF (a polyglot file)")
        file.seek(0)
        try:
            with zipfile.ZipFile(file) as archive:
                members = archive.infolist()
                if len(members) > MAX_ARCHIVE_MEMBERS:
                    raise UnsupportedContent(
                        f"the archive has over {MAX_ARCHIVE_MEMBERS:,} members"
                    )
                expanded = 0
                for member in members:
                    _check_member(archive, member)
                    expanded += member.file_size
                if expanded > MAX_EXPANDED_BYTES:
                    raise UnsupportedContent("the archive expands to over 1 GiB")
                names = {m.filename for m in members}
        except UnsupportedContent:
            raise
        except Exception as e:  # BadZipFile, and what a hostile archive makes zipfile raise
            raise UnsupportedContent("the file is not a readable ZIP archive") from e
        if ofd and "OFD.xml" not in names:
            raise UnsupportedContent("an OFD document holds OFD.xml at its root; this has none")

    return check


def _check_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> None:
    name = member.filename
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or ".." in parts or (len(name) > 1 and name[1] == ":"):
        raise UnsupportedContent(f"the archive member {name[:100]!r} escapes its folder")
    if any(part.lower().endswith(tuple(EXECUTABLE_SUFFIXES)) for part in parts[-1:]):
        raise UnsupportedContent(f"the archive holds a program ({name[:100]!r})")
    if member.is_dir():
        return
    if member.compress_size and member.file_size / member.compress_size > MAX_RATIO:
        raise UnsupportedContent(f"the archive member {name[:100]!r} is a compression bomb")
    if member.flag_bits & 0x1:
        raise UnsupportedContent("the archive is encrypted; send it without a password")
    with archive.open(member) as opened:
        if opened.read(4).startswith(_EXECUTABLE_HEADS):
            raise UnsupportedContent(f"the archive holds a program ({name[:100]!r})")


_CHECKS: dict[str, Callable[[IO[bytes]], None]] = {
    "image/png": _image("PNG"),
    "image/jpeg": _image("JPEG"),
    "application/pdf": _pdf,
    "application/zip": _archive(ofd=False),
    "application/ofd": _archive(ofd=True),
}
