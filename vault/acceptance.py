"""What an application may be accepted with, said once: for accepting it
(:meth:`vault.services.applications.Applications.apply`) and for re-adjudication, which
asks of every recorded acceptance whether its tracks and each material were right under
the policy and catalogue of its time (:meth:`vault.services.audit.Audit.readjudicate`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from policy.catalogue_entries import Material
from vault.document import Document, DocumentStatus, has_expired


def attachable(document: object, resident_id: str, material: Material, now: datetime) -> bool:
    """Whether a document may be taken from the library for a material (证件复用): the
    resident's own, current, unexpired, of the material's type and trust level."""
    return (
        isinstance(document, Document) and document.resident_id == resident_id
        and document.doc_type == material.doc_type
        and document.status is DocumentStatus.ACTIVE
        and not has_expired(document.expires_at, now)
        and document.trust_level.at_least(material.min_trust)
    )


def may_be_missing(material: Material, tracks: tuple[str, ...]) -> str | None:
    """Why a material may not be accepted as missing (容缺受理), or None if it may."""
    if material.key:
        return f"{material.doc_type} is a key material (关键材料): it cannot be supplied later"
    if "missing-allowed" not in tracks:
        return "容缺受理 (missing-allowed) is not among the resident's tracks for this service"
    return None


def may_be_committed(material: Material, tracks: tuple[str, ...]) -> str | None:
    """Why a commitment may not stand in for a material (告知承诺), or None if it may."""
    if not material.commitment_allowed:
        return (f"{material.doc_type} cannot be replaced by a commitment (告知承诺) for this "
                "service")
    if "commitment" not in tracks:
        return "告知承诺 (commitment) is not among the resident's tracks for this service"
    return None


def acceptance_problems(
    *,
    materials: tuple[Material, ...],
    recorded: Sequence[Mapping[str, Any]],
    recorded_tracks: tuple[str, ...],
    earned_tracks: tuple[str, ...],
    resident_id: str,
    document: Callable[[str], object],
    at: datetime,
) -> tuple[str, ...]:
    """What is wrong with a recorded acceptance, judged again: its tracks against those the
    resident earned then, and each material against the rules above on the documents as
    they stood (``document``: by id). Empty when it was right."""
    problems: list[str] = []
    if tuple(recorded_tracks) != tuple(earned_tracks):
        problems.append("tracks")
    entries = {m["doc_type"]: m for m in recorded}
    if sorted(entries) != sorted(m.doc_type for m in materials) or len(entries) != len(recorded):
        problems.append("materials")
    for material in materials:
        entry = entries.get(material.doc_type)
        if entry is None:
            continue
        source = entry["source"]
        if source == "library":
            ok = "reuse" in earned_tracks and attachable(
                document(str(entry["document_id"])), resident_id, material, at
            )
        elif source == "missing":
            ok = may_be_missing(material, earned_tracks) is None
        elif source == "commitment":
            ok = may_be_committed(material, earned_tracks) is None
        else:
            ok = False  # nothing else is accepted with the application
        if not ok:
            problems.append(f"{source}:{material.doc_type}")
    return tuple(problems)
