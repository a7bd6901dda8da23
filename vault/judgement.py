"""Judging a department's fetch: every reason it may not have the document now.

A pure function of the state the application loaded, so that auditors can run
it again on the state as it stood at any past time; and recording it, in the
order the events must be saved.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar
from uuid import UUID

from policy.decision import Decision, Reason
from policy.scales import UNRATED, Grade, TrustLevel
from vault.access import AccessAttempt
from vault.consent import Consent, ConsentStatus
from vault.document import Document
from vault.errors import ConsentDenied, DocumentUnavailable
from vault.inputs import ByteRange
from vault.resident import Resident


class Decides(Protocol):
    """What judging needs of a decision point (:class:`policy.decision.DecisionPoint`)."""

    @property
    def version(self) -> str:
        """The policy version (content hash) its decisions are made under."""
        ...

    def decide(
        self,
        *,
        officer: str,
        department: str,
        doc_type: str,
        purpose: str,
        grade: Grade | None,
        trust: TrustLevel,
    ) -> Decision: ...


class Listed(Protocol):
    """A document as :func:`fetchable` needs it: an aggregate, or a read-model row."""

    @property
    def doc_type(self) -> str: ...

    @property
    def trust_level(self) -> TrustLevel: ...

    @property
    def is_active(self) -> bool: ...

    def is_expired(self, now: datetime) -> bool: ...


class Granted(Protocol):
    """A consent as :func:`fetchable` needs it: an aggregate, or a read-model row."""

    def status(self, now: datetime) -> ConsentStatus: ...

    def covers(self, department: str, doc_type: str, purpose: str) -> bool: ...


L = TypeVar("L", bound=Listed)


def fetchable(
    documents: Iterable[L],
    *,
    consents: Sequence[Granted],
    grade: Grade | None,
    officer: str,
    department: str,
    purpose: str,
    point: Decides,
    now: datetime,
) -> Iterator[L]:
    """The documents (of a registered resident who is not erased, with ``grade``) that a
    department may fetch now for a purpose, in the order given: each available, not
    expired, covered by a consent that is active now, and allowed by the policy. A fetch
    of any of them would be allowed as :func:`judge_fetch` judges it, given the same
    state; the listing is read from the read models, the fetch judged on the aggregates."""
    live = [c for c in consents if c.status(now) is ConsentStatus.ACTIVE]
    for document in documents:
        if (
            document.is_active
            and not document.is_expired(now)
            and any(c.covers(department, document.doc_type, purpose) for c in live)
            and point.decide(
                officer=officer,
                department=department,
                doc_type=document.doc_type,
                purpose=purpose,
                grade=grade,
                trust=document.trust_level,
            ).allowed
        ):
            yield document


@dataclass(frozen=True)
class Judgement:
    reasons: tuple[Reason, ...]
    """Every reason the fetch is refused; empty when it is allowed."""
    consent: Consent | None
    """The consent the fetch would use (the usable one that ends soonest)."""
    decision: Decision | None
    """The policy decision, when there was a document and a resident to decide on."""
    consent_refused: Reason | None = None
    """Why no consent lets the department fetch the document now, when none does."""

    @property
    def allowed(self) -> bool:
        return not self.reasons

    def told_to_officer(
        self, *, consented: bool, department: str, purpose: str
    ) -> tuple[Reason, ...]:
        """The reasons a refused fetch gives the officer who asked. Where the resident gave
        the department no consent for the purpose (``consented`` is False) — or is unknown,
        or erased — only that: an officer cannot tell who is registered, nor learn anything
        of a resident who consented to nothing. Where no consent lets the department fetch
        the document now (revoked, expired, not yet valid, used up, or not covering it),
        only why: a department without a live consent learns nothing more, so it cannot
        watch the resident's grade change through denials. Otherwise every reason, worded
        as the requirement, never the resident's credit grade."""
        if not consented:
            return (
                Reason(
                    "no-consent",
                    f"no consent from the resident lets {department} fetch documents for "
                    f"{purpose}",
                ),
            )
        if self.consent_refused is not None:
            return (Reason(self.consent_refused.code, self.consent_refused.for_officer),)
        return tuple(Reason(r.code, r.for_officer) for r in self.reasons)


def judge_fetch(
    *,
    resident: Resident | None,
    document: Document | None,
    consents: Sequence[Consent],
    officer: str,
    department: str,
    purpose: str,
    point: Decides,
    now: datetime,
) -> Judgement:
    """Decide a fetch from loaded state; consent is judged on the aggregates themselves."""
    reasons: list[Reason] = []
    if resident is None:
        reasons.append(Reason("resident-not-found", "the resident is not registered"))
    elif resident.is_erased:
        reasons.append(Reason("resident-erased", "the resident asked to be erased"))
    if document is None:
        reasons.append(Reason("document-not-found", "the resident has no such document"))
        return Judgement(tuple(reasons), None, None)
    try:
        document.check_available()
    except DocumentUnavailable as e:
        reasons.append(Reason(e.code, str(e)))
    if document.is_expired(now):
        assert document.expires_at is not None
        reasons.append(
            Reason("document-expired", f"the document expired at {document.expires_at.isoformat()}")
        )
    consent, consent_reason = _usable_consent(consents, department, document.doc_type, purpose, now)
    if consent_reason is not None:
        reasons.append(consent_reason)
    decision = None
    if resident is not None:
        decision = point.decide(
            officer=officer,
            department=department,
            doc_type=document.doc_type,
            purpose=purpose,
            grade=resident.grade,
            trust=document.trust_level,
        )
        if not decision.allowed:
            reasons.extend(decision.reasons)
    return Judgement(tuple(reasons), consent, decision, consent_reason)


def record_fetch(
    *,
    resident: Resident | None,
    resident_id: str,
    document: Document | None,
    document_id: UUID,
    consents: Sequence[Consent],
    officer: str,
    department: str,
    purpose: str,
    point: Decides,
    request_id: str,
    now: datetime,
    byte_range: ByteRange | None = None,
) -> tuple[AccessAttempt, Judgement, tuple[Any, ...]]:
    """Judge a fetch and record it: its access event and, when it is allowed and the bytes
    asked for (``byte_range``, all by default) are there to go out, the use of the consent
    and the reuse of the document. Returns the access event, the judgement and every
    aggregate to save, in one transaction, in this order: the access first, so that the
    state just before it in the log is the state it was judged on (re-adjudication folds
    the log in order)."""
    judgement = judge_fetch(
        resident=resident,
        document=document,
        consents=consents,
        officer=officer,
        department=department,
        purpose=purpose,
        point=point,
        now=now,
    )
    access = AccessAttempt.record(
        resident_id=resident_id,
        officer=officer,
        department=department,
        document_id=document_id,
        doc_type=document.doc_type if document else None,
        purpose=purpose,
        consent_id=judgement.consent.id if judgement.consent else None,
        grade=resident.grade_label if resident else UNRATED,
        trust_level=document.trust_level.value if document else None,
        allowed=judgement.allowed,
        reason_codes=[r.code for r in judgement.reasons],
        reasons=[r.text for r in judgement.reasons],
        policy_version=point.version,
        rule=judgement.decision.rule if judgement.decision else None,
        request_id=request_id,
        at=now,
    )
    if not judgement.allowed:
        return access, judgement, (access,)
    assert document is not None
    if byte_range is not None and byte_range.span(document.size) is None:
        # Allowed, but nothing of the document can go out: recorded so, charged nothing.
        access.undeliver("range-not-satisfiable", now)
        return access, judgement, (access,)
    assert judgement.consent is not None
    judgement.consent.use(
        department=department,
        doc_type=document.doc_type,
        purpose=purpose,
        document_id=document.id,
        request_id=request_id,
        now=now,
    )
    document.reuse(department, purpose, access.id, now)
    return access, judgement, (access, judgement.consent, document)


def _usable_consent(
    consents: Sequence[Consent], department: str, doc_type: str, purpose: str, now: datetime
) -> tuple[Consent | None, Reason | None]:
    """The usable consent that ends soonest, or the most telling reason there is none."""
    usable: list[Consent] = []
    refusals: list[Reason] = []
    for consent in consents:
        try:
            consent.check_allows(department, doc_type, purpose, now)
        except ConsentDenied as e:
            if consent.covers(department, doc_type, purpose):
                refusals.append(Reason(e.code, str(e)))
            continue
        usable.append(consent)
    if usable:
        return min(usable, key=lambda c: c.valid_until), None
    if refusals:
        return None, refusals[0]
    return None, Reason(
        "no-consent",
        f"no consent from the resident lets {department} fetch {doc_type} for {purpose}",
    )
