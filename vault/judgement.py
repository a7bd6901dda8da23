"""Judging a department's fetch: every reason it may not have the document now.

A pure function of the state the application loaded, so that auditors can run
it again on the state as it stood at any past time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from policy.decision import Decision, Reason
from policy.scales import Grade, TrustLevel
from vault.consent import Consent
from vault.document import Document
from vault.errors import ConsentDenied, DocumentUnavailable
from vault.resident import Resident


class Decides(Protocol):
    """What judging needs of a decision point (:class:`policy.decision.DecisionPoint`)."""

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


@dataclass(frozen=True)
class Judgement:
    reasons: tuple[Reason, ...]
    """Every reason the fetch is refused; empty when it is allowed."""
    consent: Consent | None
    """The consent the fetch would use (the usable one that ends soonest)."""
    decision: Decision | None
    """The policy decision, when there was a document and a resident to decide on."""

    @property
    def allowed(self) -> bool:
        return not self.reasons


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
    return Judgement(tuple(reasons), consent, decision)


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
