"""`civicvault demo`: a narrated walk through the vault on the configured stores."""

from __future__ import annotations

import hashlib
import io
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import TextIO
from uuid import UUID

from adapters.samples import sample_pdf, sample_png
from adapters.wiring import Services, describe
from keys.receipts import verify_consent_receipt
from policy.scales import Grade
from projections.ledger import verify as verify_ledger
from vault.document import Document
from vault.errors import AccessDenied, VaultError
from vault.inputs import ConsentRequest, DocumentDetails, GradeUpdate


def run_demo(services: Services, out: TextIO) -> None:
    """Register a resident, file documents, consent, fetch, grade, revoke, erase: saying each."""

    def say(step: str, detail: str = "") -> None:
        print(f"\n▶ {step}", file=out)
        if detail:
            for line in detail.splitlines():
                print(f"  {line}", file=out)

    resident_id = f"zhang-wei-{secrets.token_hex(3)}"
    id_card, household, id_card_bytes = _file_documents(services, resident_id, say)
    consent_id = _consent_and_fetch(services, resident_id, id_card, id_card_bytes, say)
    _grades_then_revoke(services, resident_id, consent_id, household, say)
    _erase(services, resident_id, id_card, say)
    say("Done. Run `make test` for the full suite; see README.md for the model.")


Say = Callable[..., None]


def _file_documents(
    services: Services, resident_id: str, say: Say
) -> tuple[Document, Document, bytes]:
    where = describe(services.settings)
    say(
        "civicvault demo — 让信息多走路，让市民少跑腿",
        f"events:  {where['database']}\nblobs:   {where['blobs']}\n"
        f"master key: {where['master_key']}",
    )

    resident = services.residents.register(resident_id).value
    say(
        f"Resident 张伟 registers as {resident_id}",
        f"credit grade: {resident.grade_label} (treated as C for access, no fast-track)\n"
        "a personal data key is created for them, wrapped by the master key",
    )

    id_card_bytes = sample_png(seed=7)
    id_card = services.documents.submit(
        resident_id,
        io.BytesIO(id_card_bytes),
        DocumentDetails(
            doc_type="id-card",
            title="居民身份证 张伟",
            content_type="image/png",
            filename="id-card.png",
        ),
    ).value
    household = services.documents.submit(
        resident_id,
        io.BytesIO(sample_pdf("Household register - Zhang Wei")),
        DocumentDetails(
            doc_type="household-register",
            title="户口簿 张伟",
            content_type="application/pdf",
            filename="hukou.pdf",
        ),
    ).value
    say(
        "张伟 uploads two documents, once",
        f"id-card            {id_card.id}  {id_card.size} B  trust level {id_card.trust_level}\n"
        f"household-register {household.id}  {household.size} B  "
        f"trust level {household.trust_level}\n"
        "bytes are sealed with AES-256-GCM in 64 KiB chunks under a per-document key;\n"
        "titles and hashes inside the events are sealed with 张伟's key",
    )

    verified = services.documents.verify("civil-affairs", "officer-li", id_card.id).value
    say(
        "An officer of 民政局 (civil-affairs) checks the ID card against the original",
        f"trust level {id_card.trust_level} → {verified.trust_level}",
    )
    return verified, household, id_card_bytes


def _consent_and_fetch(
    services: Services, resident_id: str, id_card: Document, id_card_bytes: bytes, say: Say
) -> UUID:
    granted = services.consents.grant(
        resident_id,
        ConsentRequest(
            department="civil-affairs",
            doc_types=("id-card", "household-register"),
            purpose="subsistence-allowance",
            valid_until=services.clock.now() + timedelta(days=30),
            max_uses=3,
        ),
    )
    claims = verify_consent_receipt(granted.receipt, services.signing.public_keys("receipts"))
    say(
        "张伟 consents: 民政局 may fetch id-card and household-register for 低保申请, 3 times",
        f"consent {granted.consent.id}\n"
        f"signed receipt (JWS, EdDSA): {granted.receipt[:48]}…\n"
        f"receipt verifies with the public key alone: consentReceiptID "
        f"{claims['consentReceiptID']}",
    )

    fetch = services.fetches.fetch(
        officer="officer-li",
        department="civil-affairs",
        resident_id=resident_id,
        document_id=id_card.id,
        purpose="subsistence-allowance",
    )
    fetched = b"".join(fetch.content)
    same = hashlib.sha256(fetched).digest() == hashlib.sha256(id_card_bytes).digest()
    say(
        "民政局 reuses the ID card instead of asking 张伟 to bring it again",
        f"allowed by: {fetch.access.rule}\n"
        f"access event {fetch.access.id} recorded before any byte was sent\n"
        f"one use of the consent consumed; {len(fetched)} bytes decrypted, "
        f"identical to the upload: {same}",
    )

    try:
        services.fetches.fetch(
            officer="officer-zhao",
            department="housing",
            resident_id=resident_id,
            document_id=id_card.id,
            purpose="housing-subsidy",
        )
        outcome = "allowed (this would be a bug)"
    except AccessDenied as e:
        outcome = "denied, and recorded:\n" + "\n".join(f"- {r}" for r in e.reasons)
    say("住建局 (housing) asks for the ID card for 住房补贴 without consent", outcome)
    return granted.consent.id


def _grades_then_revoke(
    services: Services, resident_id: str, consent_id: UUID, household: Document, say: Say
) -> None:
    now = services.clock.now

    first = services.residents.record_grades(
        [GradeUpdate(resident_id, Grade.B, now(), sequence=2)]
    )
    late = services.residents.record_grades(
        [GradeUpdate(resident_id, Grade.D, now() - timedelta(days=1), sequence=1)]
    )
    resident = services.residents.resident(resident_id)
    tracks = services.policies.decision_point().tracks("residence-permit", resident.grade)
    grade = resident.grade_label
    say(
        "The credit platform pushes grades",
        f"grade B, sequence 2 → applied {first.applied}\n"
        f"grade D, sequence 1 arrives late → stale {late.stale}, never overwrites B\n"
        f"张伟's grade is now {grade}; fast-track for "
        f"居住证办理 (residence-permit): {', '.join(tracks.tracks) or 'none'}",
    )

    services.consents.revoke(resident_id, consent_id)
    try:
        services.fetches.fetch(
            officer="officer-li",
            department="civil-affairs",
            resident_id=resident_id,
            document_id=household.id,
            purpose="subsistence-allowance",
        )
        outcome = "allowed (this would be a bug)"
    except AccessDenied as e:
        outcome = "denied: " + "; ".join(e.reasons)
    say("张伟 revokes the consent; 民政局 tries again", outcome)


def _erase(services: Services, resident_id: str, id_card: Document, say: Say) -> None:
    now = services.clock.now

    events_before = services.events.head()
    services.ledger.catch_up()
    services.ledger.checkpoint()  # sign the log as it stood before the erasure
    services.residents.erase(resident_id)
    replayed = services.store.as_of(id_card.id, now())
    try:
        b"".join(services.documents.content(replayed))  # type: ignore[arg-type]
        readable = "still readable (this would be a bug)"
    except VaultError as e:
        readable = f"cannot be decrypted: {e.code}"
    say(
        "张伟 asks to be erased (crypto-shredding)",
        f"the resident key is destroyed; the {events_before} events stay and still replay\n"
        f"replayed ID card title: {getattr(replayed, 'title', None)!r}\n"
        f"ID card bytes: {readable}",
    )
    services.ledger.catch_up()
    verdict = verify_ledger(
        services.events, services.ledger, services.signing.public_keys("checkpoints")
    )
    say(
        "an auditor verifies the ledger after the erasure",
        f"{'intact' if verdict.intact else 'TAMPERED: ' + str(verdict.problem)}: "
        f"{verdict.events} events rehashed, {verdict.checkpoints} signed checkpoints match",
    )
