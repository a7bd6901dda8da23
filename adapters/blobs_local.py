"""Blob store on a local directory: atomic writes, fsync'd, no way out of the root."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from keys.files import fsync_dir
from vault.errors import BlobStoreUnavailable
from vault.ports import BlobInfo, BlobNotFound

_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}(?:/[A-Za-z0-9][A-Za-z0-9._-]{0,127}){0,7}")
_FOLDERS_KEPT = 65_536
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)
READ_BYTES = 1024 * 1024  # sealed chunks span piece ends rarely, so few get copied


class InvalidBlobKey(ValueError):
    """A blob key that could name a path outside the store, or is otherwise malformed."""


class LocalBlobStore:
    """Each blob is a file under ``root``; writes go to a temp file, fsync, rename, fsync folder."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._folders: dict[str, Path] = {}

    def put(self, key: str, chunks: Iterable[bytes]) -> int:
        path = self._path(key)
        tmp = path.with_name(f"{path.name}.tmp-{uuid.uuid4().hex}")
        written = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "xb") as f:
                for chunk in chunks:
                    f.write(chunk)
                    written += len(chunk)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            fsync_dir(path.parent)
        except OSError as e:  # a full or failing disk: the store, not the request
            _remove_if_possible(tmp)
            raise BlobStoreUnavailable(
                f"the blob store could not store a document: {e.strerror}"
            ) from None
        except BaseException:
            _remove_if_possible(tmp)
            raise
        return written

    def get(self, key: str) -> Iterator[bytes]:
        path = self._path(key)
        try:
            f = os.fdopen(os.open(path, os.O_RDONLY | _NO_FOLLOW), "rb")
        except FileNotFoundError:
            raise BlobNotFound(key) from None
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise InvalidBlobKey(f"blob key {key!r} is a link") from None
            raise BlobStoreUnavailable(
                f"the blob store could not read a document: {e.strerror}"
            ) from None
        return _read_and_close(f)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        fsync_dir(path.parent)

    def list(self) -> Iterator[BlobInfo]:
        for folder, _, files in os.walk(self.root):
            for name in files:
                path = Path(folder, name)
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue
                yield BlobInfo(
                    key=path.relative_to(self.root).as_posix(),
                    size=stat.st_size,
                    modified_at=datetime.fromtimestamp(stat.st_mtime, UTC),
                )


    def _path(self, key: str) -> Path:
        """The file of a key. No component of a key can be ``.`` or ``..`` (each starts with
        a letter or digit), so only a symbolic link could lead out of the root: each
        folder is resolved and checked once (the vault's keys share 256 of them), and the
        file itself is opened without following a link (:meth:`get`)."""
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise InvalidBlobKey(f"invalid blob key {key!r}")
        parent, _, name = key.rpartition("/")
        folder = self._folders.get(parent)
        if folder is None:
            folder = (self.root / parent).resolve()
            if not folder.is_relative_to(self.root):
                raise InvalidBlobKey(f"blob key {key!r} leaves the store")
            if len(self._folders) < _FOLDERS_KEPT:
                self._folders[parent] = folder
        return folder / name


def _remove_if_possible(path: Path) -> None:
    """Remove a half-written file; on a disk that fails, the failure that brought us here
    is the one to report, and the sweep (``civicvault gc``) takes what is left."""
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def _read_and_close(f: BinaryIO) -> Iterator[bytes]:
    with f:
        try:
            while piece := f.read(READ_BYTES):
                yield piece
        except OSError as e:
            raise BlobStoreUnavailable(
                f"the blob store could not read a document: {e.strerror}"
            ) from None
