"""Named domain errors: every refused command says why, in words and as a stable code."""

from __future__ import annotations

from typing import ClassVar


class VaultError(Exception):
    """Base class; ``code`` is stable and machine-readable, the message is for people."""

    code: ClassVar[str] = "vault-error"
    position: int | None = None
    """The log position the failed command still reached (it recorded the attempt, say),
    for a reader who wants to see that record."""


class InvalidInput(VaultError):
    """A command argument is malformed; nothing was changed."""

    code = "invalid-input"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class InvalidPublication(VaultError):
    """A file that cannot be published; names its first bad line."""

    code = "invalid-file"

    def __init__(self, line: int | None, reason: str) -> None:
        super().__init__(reason if line is None else f"line {line}: {reason}")
        self.line = line
        self.reason = reason


class InvalidPolicy(InvalidPublication):
    """A policy file that cannot be published."""

    code = "invalid-policy"


class InvalidCatalogue(InvalidPublication):
    """A catalogue file that cannot be published."""

    code = "invalid-catalogue"


class NotFound(VaultError):
    code = "not-found"


class ResidentNotFound(NotFound):
    code = "resident-not-found"


class DocumentNotFound(NotFound):
    code = "document-not-found"


class ConsentNotFound(NotFound):
    code = "consent-not-found"


class AccessNotFound(NotFound):
    code = "access-not-found"


class UnknownPolicyVersion(NotFound):
    """No policy of that version (content hash) was ever published."""

    code = "unknown-policy-version"


class ResidentErased(VaultError):
    """The resident asked to be erased; nothing of theirs can be read or added."""

    code = "resident-erased"


class DocumentUnavailable(VaultError):
    """The document can no longer be used: withdrawn, revoked or superseded."""

    code = "document-unavailable"


class DocumentWithdrawn(DocumentUnavailable):
    code = "document-withdrawn"


class DocumentGone(DocumentWithdrawn):
    """The resident asks for a document they withdrew: it is gone for them too (its
    history stays in the log and the access log)."""


class DocumentRevoked(DocumentUnavailable):
    code = "document-revoked"


class DocumentSuperseded(DocumentUnavailable):
    code = "document-superseded"


class NotTheIssuer(VaultError):
    """Only the department that issued a document may revoke it."""

    code = "not-the-issuer"


class AlreadyTrusted(VaultError):
    """Verification cannot raise a document that is already at trust level B or above."""

    code = "already-trusted"


class ConsentDenied(VaultError):
    """A consent does not allow this use; ``code`` says which condition failed."""

    code = "consent-denied"


class ConsentRevoked(ConsentDenied):
    code = "consent-revoked"


class ConsentExpired(ConsentDenied):
    code = "consent-expired"


class ConsentNotYetValid(ConsentDenied):
    code = "consent-not-yet-valid"


class ConsentUsedUp(ConsentDenied):
    code = "consent-used-up"


class ConsentWrongDepartment(ConsentDenied):
    code = "consent-wrong-department"


class ConsentWrongDocType(ConsentDenied):
    code = "consent-wrong-doc-type"


class ConsentWrongPurpose(ConsentDenied):
    code = "consent-wrong-purpose"


class ConsentAlreadyRevoked(VaultError):
    code = "consent-already-revoked"


class ApplicationNotFound(NotFound):
    code = "application-not-found"


class ServiceNotAcceptedHere(VaultError):
    """The unit's windows may not accept this service (its owner did not delegate it to
    that level or unit, and it is not accepted city-wide)."""

    code = "service-not-accepted-here"


class CodeRefused(VaultError):
    """An authorization code that is unknown, used, expired or for another service; which of
    these is not said (the code is a secret)."""

    code = "authorization-code-refused"


class ApplicationClosed(VaultError):
    """The application is decided or withdrawn, or not in the state the command needs."""

    code = "application-closed"


class StepMoved(VaultError):
    """The application is not waiting for this department now: another reviewer decided the
    step first, or its step has not come yet."""

    code = "step-moved"


class NotAReviewer(VaultError):
    """The department reviews no step of the application."""

    code = "not-a-reviewer"


class AlreadyRated(VaultError):
    code = "already-rated"


class ContentCorrupted(VaultError):
    """Stored bytes no longer match what was sealed: an integrity failure, not bad input."""

    code = "content-corrupted"


class BlobMissing(VaultError):
    """An event refers to a blob the store does not have: an integrity failure."""

    code = "blob-missing"


class BlobStoreUnavailable(VaultError):
    """The blob store could not be reached (or failed): nothing was stored or read. Try
    again later."""

    code = "blob-store-unavailable"


class RangeNotSatisfiable(VaultError):
    """An allowed fetch asked for bytes the document does not have; the attempt was recorded,
    nothing went out and nothing was charged."""

    code = "range-not-satisfiable"

    def __init__(self, size: int, access_id: object, position: int | None) -> None:
        super().__init__(f"the document has {size} bytes")
        self.size = size
        self.access_id = access_id
        self.position = position


class AccessDenied(VaultError):
    """A department's fetch was refused. The attempt was recorded with every reason; this
    error carries what the officer who asked is told (``reason_codes``, ``reasons``)."""

    code = "access-denied"

    def __init__(
        self,
        message: str,
        reason_codes: tuple[str, ...],
        reasons: tuple[str, ...],
        access_id: object,
        position: int | None = None,
    ) -> None:
        super().__init__(message)
        self.reason_codes = reason_codes
        self.reasons = reasons
        self.access_id = access_id
        self.position = position
        """Where the recorded access event landed in the log."""


class AttestationDenied(AccessDenied):
    """The policy does not let this department issue (or verify) this document type; the
    attempt was recorded, and nothing of the document changed."""

    code = "attestation-denied"


class NoConsent(VaultError):
    """The resident gave this department no live consent for the purpose (or is not
    known: an officer cannot tell the two apart)."""

    code = "no-consent"


class ServiceNotHandled(VaultError):
    """The department handles no such service (no rule lets it fetch for it)."""

    code = "service-not-handled"


class Contention(VaultError):
    """Too many concurrent writers on one record; the command was not applied. Retry later."""

    code = "contention"
