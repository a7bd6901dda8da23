"""The vault's application service: the commands and queries of residents, departments and
the credit platform, each module one concern (see ``*_commands.py``)."""

from __future__ import annotations

from vault.access_commands import AccessCommands, Fetched
from vault.audit_commands import AuditCommands, ResidentReplay
from vault.base import DEFAULT_MAX_DOCUMENT_BYTES, ReceiptSigner
from vault.consent_commands import GrantedConsent
from vault.document_commands import MIN_GC_GRACE, GarbageReport
from vault.resident_commands import GradeOutcome

__all__ = [
    "DEFAULT_MAX_DOCUMENT_BYTES",
    "MIN_GC_GRACE",
    "Fetched",
    "GarbageReport",
    "GradeOutcome",
    "GrantedConsent",
    "ReceiptSigner",
    "ResidentReplay",
    "Vault",
]


class Vault(AccessCommands, AuditCommands):
    """Residents hand each document over once; departments reuse it only with consent."""

    name = "Vault"
