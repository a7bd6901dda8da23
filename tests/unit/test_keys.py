"""Key layer: envelope format errors, wrapping, master keys, resident keys, signing, receipts."""

from __future__ import annotations

import io
import os
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from keys.envelope import (
    CHUNK_BYTES,
    HEADER_BYTES,
    new_document_key,
    open_document,
    seal_document,
    sealed_size,
)
from keys.errors import (
    BadMasterKey,
    ResidentKeyShredded,
    TamperedDocument,
    TamperedSecret,
    UnknownMasterKey,
    UnknownResidentKey,
)
from keys.master import MasterKey, MasterKeys, load_or_create_key_file
from keys.receipts import ConsentTerms, InvalidReceipt, sign_consent_receipt, verify_consent_receipt
from keys.resident_keys import ResidentKeys, rotate_master
from keys.secrets import open_personal_fields, seal_personal_fields, unwrap_key, wrap_key
from keys.signing import SigningKey, SigningKeys
from tests.support import CountingKeyTable, MemoryKeyTable

IDS = {"document_id": "d1", "resident_id": "r1"}


def _seal(data: bytes, key: bytes, chunk_bytes: int = 64, **ids: str) -> bytes:
    return b"".join(seal_document(key, [data], chunk_bytes=chunk_bytes, **(ids or IDS)))


def _open(sealed: bytes, key: bytes, **ids: str) -> bytes:
    return b"".join(open_document(key, io.BytesIO(sealed), **(ids or IDS)))


# Envelope


def test_sealed_size_is_exact() -> None:
    key = new_document_key()
    for size in (0, 1, 63, 64, 65, 640):
        assert len(_seal(os.urandom(size), key)) == sealed_size(size, 64)
    assert sealed_size(0) == HEADER_BYTES + 16
    assert sealed_size(CHUNK_BYTES) == HEADER_BYTES + CHUNK_BYTES + 16


def test_file_like_and_iterable_sources_give_the_same_plaintext() -> None:
    key = new_document_key()
    data = os.urandom(1000)
    from_file = _open(b"".join(seal_document(key, io.BytesIO(data), chunk_bytes=64, **IDS)), key)
    pieces = [data[i : i + 7] for i in range(0, len(data), 7)]
    from_pieces = _open(b"".join(seal_document(key, pieces, chunk_bytes=64, **IDS)), key)
    assert from_file == from_pieces == data


def test_empty_document_round_trips() -> None:
    key = new_document_key()
    assert _open(_seal(b"", key), key) == b""


def test_wrong_key_is_detected() -> None:
    sealed = _seal(b"hello", new_document_key())
    with pytest.raises(TamperedDocument):
        _open(sealed, new_document_key())


def test_header_only_is_detected_as_truncated() -> None:
    key = new_document_key()
    with pytest.raises(TamperedDocument):
        _open(_seal(b"hello", key)[:HEADER_BYTES], key)
    with pytest.raises(TamperedDocument):
        _open(b"CVD1", key)


def test_foreign_bytes_are_refused() -> None:
    with pytest.raises(TamperedDocument, match="not a civicvault"):
        _open(b"%PDF-1.4 not sealed at all......", new_document_key())


def test_dropping_the_last_chunk_is_detected() -> None:
    key = new_document_key()
    sealed = _seal(os.urandom(64 * 3), key)
    with pytest.raises(TamperedDocument):
        _open(sealed[: -(64 + 16)], key)


def test_splicing_a_chunk_from_another_document_is_detected() -> None:
    key = new_document_key()
    one = _seal(os.urandom(128), key, document_id="d1", resident_id="r1")
    two = _seal(os.urandom(128), key, document_id="d2", resident_id="r1")
    spliced = one[: HEADER_BYTES + 80] + two[HEADER_BYTES + 80 :]
    with pytest.raises(TamperedDocument):
        _open(spliced, key)


def test_opening_under_another_owner_is_detected() -> None:
    key = new_document_key()
    sealed = _seal(b"data", key, document_id="d1", resident_id="r1")
    with pytest.raises(TamperedDocument):
        _open(sealed, key, document_id="d1", resident_id="r2")


def test_keys_must_be_256_bit() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        list(seal_document(b"short", [b"x"], **IDS))


# Small secrets


def test_wrapped_key_is_bound_to_its_context() -> None:
    kek, key = os.urandom(32), os.urandom(32)
    wrapped = wrap_key(kek, key, context=b"resident:a")
    assert unwrap_key(kek, wrapped, context=b"resident:a") == key
    with pytest.raises(TamperedSecret):
        unwrap_key(kek, wrapped, context=b"resident:b")


def test_sealed_fields_cannot_be_opened_as_a_wrapped_key() -> None:
    key = os.urandom(32)
    sealed = seal_personal_fields(key, b'{"title": "x"}', context=b"ctx")
    assert open_personal_fields(key, sealed, context=b"ctx") == b'{"title": "x"}'
    with pytest.raises(TamperedSecret):
        unwrap_key(key, sealed, context=b"ctx")
    with pytest.raises(TamperedSecret):
        open_personal_fields(key, b"\x01short", context=b"ctx")


# Master keys


def test_master_key_must_be_32_bytes_of_base64() -> None:
    with pytest.raises(BadMasterKey):
        MasterKey.from_base64("not base64!")
    with pytest.raises(BadMasterKey):
        MasterKey.from_base64("c2hvcnQ=")
    key = MasterKey.generate()
    assert MasterKey.from_base64(key.to_base64()) == key
    assert key.secret.hex() not in repr(key)


def test_key_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "master.key"
    key, created = load_or_create_key_file(path)
    assert created
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again, created_again = load_or_create_key_file(path)
    assert (again, created_again) == (key, False)


def test_unknown_master_key_id_is_named() -> None:
    ring = MasterKeys(MasterKey.generate())
    with pytest.raises(UnknownMasterKey):
        ring.by_id("0000")


# Resident keys


def test_resident_key_is_stable_and_per_resident() -> None:
    keys = ResidentKeys(MemoryKeyTable(), MasterKeys(MasterKey.generate()))
    keys.create("a")
    keys.create("a")
    keys.create("b")
    assert keys.data_key("a") == keys.data_key("a")
    assert keys.data_key("a") != keys.data_key("b")
    with pytest.raises(UnknownResidentKey):
        keys.data_key("nobody")


def test_shredded_key_is_gone_even_from_the_cache() -> None:
    keys = ResidentKeys(MemoryKeyTable(), MasterKeys(MasterKey.generate()), cache_seconds=3600)
    keys.create("a")
    keys.data_key("a")
    keys.shred("a")
    assert keys.is_shredded("a")
    with pytest.raises(ResidentKeyShredded):
        keys.data_key("a")
    keys.create("a")  # a shredded resident does not get a new key
    with pytest.raises(ResidentKeyShredded):
        keys.data_key("a")


def test_a_key_shredded_elsewhere_is_read_once_then_remembered_as_shredded() -> None:
    table = CountingKeyTable()
    master = MasterKeys(MasterKey.generate())
    here = ResidentKeys(table, master, cache_seconds=0)  # would re-read a live key each time
    elsewhere = ResidentKeys(table, master)
    here.create("a")
    elsewhere.shred("a")
    table.reads.clear()
    for _ in range(3):
        with pytest.raises(ResidentKeyShredded):
            here.data_key("a")
    assert table.reads == [["a"]]
    here.prefetch(["a"])
    assert table.reads == [["a"]]


def test_prefetch_reads_only_the_keys_the_cache_lacks() -> None:
    table = CountingKeyTable()
    keys = ResidentKeys(table, MasterKeys(MasterKey.generate()), cache_seconds=3600)
    for rid in ("a", "b", "c", "d"):
        keys.create(rid)
    keys.shred("d")
    table.reads.clear()
    keys.prefetch(["a", "b", "a"])
    keys.prefetch(["a", "b", "c", "d"])
    keys.prefetch(["c"])
    assert table.reads == [["a", "b"], ["c"]]  # d's shredding is known here already
    assert keys.data_key("c") != keys.data_key("a")
    assert table.reads == [["a", "b"], ["c"]]


def test_data_keys_answers_for_all_residents_in_one_read() -> None:
    """Live keys, None for the erased and the never registered, and one table read for
    everything the cache lacks, unknown residents included."""
    table = CountingKeyTable()
    keys = ResidentKeys(table, MasterKeys(MasterKey.generate()), cache_seconds=3600)
    for rid in ("a", "b", "d"):
        keys.create(rid)
    keys.shred("d")
    table.reads.clear()
    found = keys.data_keys(["a", "b", "d", "ghost", "a"])
    assert found == {"a": keys.data_key("a"), "b": keys.data_key("b"), "d": None, "ghost": None}
    assert found["a"] != found["b"]
    assert [sorted(read) for read in table.reads] == [["a", "b", "ghost"]]
    assert keys.data_keys(["a", "d"]) == {"a": found["a"], "d": None}
    assert len(table.reads) == 1  # all cached now


def test_document_keys_are_wrapped_for_one_document_of_one_resident() -> None:
    keys = ResidentKeys(MemoryKeyTable(), MasterKeys(MasterKey.generate()))
    keys.create("a")
    document_key = new_document_key()
    wrapped = keys.wrap_document_key("a", "d1", document_key)
    assert keys.unwrap_document_key("a", "d1", wrapped) == document_key
    with pytest.raises(TamperedSecret):
        keys.unwrap_document_key("a", "d2", wrapped)


def test_rotation_rewraps_every_key_and_the_old_master_no_longer_opens_them() -> None:
    table = MemoryKeyTable()
    old = MasterKeys(MasterKey.generate())
    keys = ResidentKeys(table, old, cache_seconds=0)
    signing = SigningKeys(table, old)
    for rid in ("a", "b", "c"):
        keys.create(rid)
    keys.shred("c")
    before = {rid: keys.data_key(rid) for rid in ("a", "b")}
    signer = signing.current("receipts")
    new = MasterKey.generate()
    seen: list[int] = []
    assert rotate_master(table, old, new, seen.append) == 3  # a, b and one signing key
    assert seen == [1, 2, 3]
    rotated = ResidentKeys(table, MasterKeys(new), cache_seconds=0)
    assert {rid: rotated.data_key(rid) for rid in ("a", "b")} == before
    assert SigningKeys(table, MasterKeys(new)).current("receipts").kid == signer.kid
    with pytest.raises(UnknownMasterKey):
        ResidentKeys(table, old, cache_seconds=0).data_key("a")


# Signing keys and receipts


def _terms(**overrides: object) -> ConsentTerms:
    now = datetime(2026, 11, 27, tzinfo=UTC)
    args: dict[str, object] = {
        "consent_id": "c1",
        "resident_id": "r1",
        "department": "civil-affairs",
        "doc_types": ("id-card",),
        "purpose": "subsistence-allowance",
        "valid_from": now,
        "valid_until": now + timedelta(days=30),
        "max_uses": 1,
        "granted_at": now,
    }
    args.update(overrides)
    return ConsentTerms(**args)  # type: ignore[arg-type]


def test_signing_key_is_created_once_and_rotation_keeps_old_keys_verifying() -> None:
    signing = SigningKeys(MemoryKeyTable(), MasterKeys(MasterKey.generate()))
    first = signing.current("receipts")
    assert signing.current("receipts").kid == first.kid
    receipt = sign_consent_receipt(first, _terms())
    second = signing.rotate("receipts")
    assert signing.current("receipts").kid == second.kid != first.kid
    assert verify_consent_receipt(receipt, signing.public_keys("receipts"))["sub"] == "r1"
    signing.retire(second.kid)
    assert signing.current("receipts").kid == first.kid


def test_a_rotation_elsewhere_signs_here_once_the_current_key_is_read_again() -> None:
    """The key that signs is read again after ``cache_seconds``: a rotation made by
    another process (its own SigningKeys on the same table) takes over then."""
    table, master = MemoryKeyTable(), MasterKeys(MasterKey.generate())
    clock = [0.0]
    here = SigningKeys(table, master, cache_seconds=1.0, monotonic=lambda: clock[0])
    first = here.current("receipts")
    rotated = SigningKeys(table, master).rotate("receipts")
    clock[0] = 0.5
    assert here.current("receipts").kid == first.kid
    clock[0] = 1.0
    assert here.current("receipts").kid == rotated.kid != first.kid


def test_receipt_verifies_with_the_public_key_alone_and_carries_the_terms() -> None:
    key = SigningKey("k1", Ed25519PrivateKey.generate())
    receipt = sign_consent_receipt(key, _terms())
    claims = verify_consent_receipt(receipt, key.public_key)
    purpose = claims["services"][0]["purposes"][0]
    assert claims["consentReceiptID"] == "c1"
    assert claims["piiPrincipalId"] == "r1"
    assert purpose["thirdPartyName"] == "civil-affairs"
    assert purpose["piiCategory"] == ["id-card"]
    assert purpose["maxUses"] == 1


def test_tampered_or_foreign_receipts_are_refused() -> None:
    key = SigningKey("k1", Ed25519PrivateKey.generate())
    receipt = sign_consent_receipt(key, _terms())
    header, payload, signature = receipt.split(".")
    forged = sign_consent_receipt(key, _terms(department="housing")).split(".")[1]
    with pytest.raises(InvalidReceipt):
        verify_consent_receipt(f"{header}.{forged}.{signature}", key.public_key)
    with pytest.raises(InvalidReceipt):
        verify_consent_receipt(receipt, Ed25519PrivateKey.generate().public_key())
    with pytest.raises(InvalidReceipt, match="unknown key id"):
        verify_consent_receipt(receipt, {"other": key.public_key})
    with pytest.raises(InvalidReceipt):
        verify_consent_receipt("not-a-jws", key.public_key)
    assert payload


def test_a_read_racing_a_shred_is_not_cached() -> None:
    table = MemoryKeyTable()
    keys = ResidentKeys(table, MasterKeys(MasterKey.generate()), cache_seconds=3600)
    keys.create("a")
    row_read = threading.Event()
    shredded = threading.Event()
    real_read = table.resident_key

    def slow_read(resident_id: str) -> object:
        row = real_read(resident_id)
        row_read.set()
        shredded.wait(5)
        return row

    table.resident_key = slow_read  # type: ignore[method-assign]
    reader = threading.Thread(target=keys.data_key, args=("a",))
    reader.start()
    row_read.wait(5)
    table.resident_key = real_read  # type: ignore[method-assign]
    keys.shred("a")
    shredded.set()
    reader.join()
    with pytest.raises(ResidentKeyShredded):
        keys.data_key("a")
