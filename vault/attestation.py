"""An attestation attempt: a department's try at issuing a document into a resident's
library (trust level A) or verifying one against its original (trust level B), allowed
or refused, recorded once, like a fetch.

Which department may issue or verify which document type is policy (``p3`` rules). A
refused attempt changes nothing of the document; every attempt shows in the resident's
access log and the audit, and re-adjudication makes its decision again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol
from uuid import UUID

from eventsourcing.domain import Aggregate

from policy.decision import Decision, Reason
from policy.scales import TrustLevel
from vault.aggregate import VaultAggregate
from vault.document import Document
from vault.errors import DocumentUnavailable
from vault.markers import Erased
from vault.resident import Resident

ISSUE, VERIFY = "issue", "verify"


class AttestationAttempt(VaultAggregate):
    """Who tried to attest which document of whose, how, with what outcome and why."""

    class Recorded(Aggregate.Created):
        personal_fields: ClassVar[tuple[str, ...]] = ("reasons",)
        resident_id: str
        officer: str
        department: str
        act: str
        document_id: UUID
        doc_type: str
        allowed: bool
        reason_codes: list[str]
        reasons: list[str]
        policy_version: str
        rule: str | None
        request_id: str
        at: datetime

    def __init__(
        self,
        resident_id: str,
        officer: str,
        department: str,
        act: str,
        document_id: UUID,
        doc_type: str,
        allowed: bool,
        reason_codes: list[str],
        reasons: list[str] | Erased,
        policy_version: str,
        rule: str | None,
        request_id: str,
        at: datetime,
    ) -> None:
        self.resident_id = resident_id
        self.officer = officer
        self.department = department
        self.act = act
        self.document_id = document_id
        self.doc_type = doc_type
        self.allowed = allowed
        self.reason_codes = tuple(reason_codes)
        self.reasons: tuple[str, ...] | Erased = (
            reasons if isinstance(reasons, Erased) else tuple(reasons)
        )
        self.policy_version = policy_version
        self.rule = rule
        self.request_id = request_id
        self.at = at

    @classmethod
    def record(cls, judged: AttestationJudgement, **fields: Any) -> AttestationAttempt:
        """Record an attempt as ``judged``; its event is stamped with its time (``at``)."""
        return cls._create(
            cls.Recorded,
            timestamp=fields["at"],
            allowed=judged.allowed,
            reason_codes=[r.code for r in judged.reasons],
            reasons=[r.text for r in judged.reasons],
            policy_version=judged.policy_version,
            rule=judged.decision.rule,
            **fields,
        )


ATTESTATION_TOPIC = f"{__name__}:AttestationAttempt.Recorded"


class Attests(Protocol):
    """What judging needs of a decision point (:class:`policy.decision.DecisionPoint`)."""

    @property
    def version(self) -> str: ...

    def attest(self, *, officer: str, department: str, doc_type: str, act: str) -> Decision: ...


@dataclass(frozen=True)
class AttestationJudgement:
    reasons: tuple[Reason, ...]
    """Every reason the attempt is refused; empty when it is allowed."""
    decision: Decision
    policy_version: str

    @property
    def allowed(self) -> bool:
        return not self.reasons

    @property
    def refused_by_policy(self) -> bool:
        return not self.decision.allowed


def judge_attestation(
    *,
    act: str,
    resident: Resident | None,
    document: Document | None,
    doc_type: str,
    officer: str,
    department: str,
    point: Attests,
) -> AttestationJudgement:
    """Decide an attestation from loaded state: the policy first (a department that may not
    attest this document type learns nothing of the resident or the document), then the
    state the act needs — a resident who was not erased, and for a verification a
    document still available and not already trusted at B or above."""
    decision = point.attest(officer=officer, department=department, doc_type=doc_type, act=act)
    if not decision.allowed:
        return AttestationJudgement(decision.reasons, decision, point.version)
    reasons: list[Reason] = []
    if resident is not None and resident.is_erased:
        reasons.append(Reason("resident-erased", "the resident asked to be erased"))
    if act == VERIFY and document is not None:
        reasons.extend(_unverifiable(document))
    return AttestationJudgement(tuple(reasons), decision, point.version)


def _unverifiable(document: Document) -> Sequence[Reason]:
    try:
        document.check_available()
    except DocumentUnavailable as e:
        return (Reason(e.code, str(e)),)
    if document.trust_level.at_least(TrustLevel.B):
        level = document.trust_level.value
        return (
            Reason("already-trusted", f"document {document.id} is already at trust level {level}"),
        )
    return ()
