"""Applications (办件): accepted once, with the materials taken from the resident's library
under consents made for exactly this application; reviewed step by step; decided, with
the owner's document issued into the library on approval."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Sequence, Set
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from uuid import UUID

from eventsourcing.domain import Aggregate

from policy.catalogue import Service, catalogue
from policy.catalogue_entries import Material as ServiceMaterial
from policy.scales import TrustLevel
from vault.acceptance import attachable, may_be_committed, may_be_missing
from vault.application import Application, AuthorizationCode, Decision
from vault.consent import Consent
from vault.document import Document, has_expired
from vault.errors import (
    ApplicationNotFound,
    CodeRefused,
    DocumentNotFound,
    InvalidInput,
    ServiceNotAcceptedHere,
)
from vault.ids import check_resident_id, parse_uuid
from vault.inputs import DocumentDetails, check_known, check_text
from vault.ports import Clock, ReceiptSigner
from vault.prefill import Attached, EarlierForm, FormValue, fill_form
from vault.resident import Resident
from vault.services.catalogues import Catalogues
from vault.services.consents import receipt_for
from vault.services.documents import Documents
from vault.services.policies import Policies
from vault.services.residents import Residents, still_active
from vault.store import Store, Written, first_then
from vault.workdays import (
    ClockState,
    WorkingCalendar,
    add_working_days,
    clock_state,
    due_with_pauses,
    working_days_used,
)

CODE_LIFETIME = timedelta(minutes=10)
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
"""No 0/O, 1/I: read aloud or typed at a counter without mistakes."""
CODE_LENGTH = 8
"""40 bits: far beyond what the write rate limit lets a clerk guess in ten minutes."""
SUPPLY_WITHIN_DAYS = 5
"""Working days a resident has to supply a material accepted as missing (容缺)."""
RETENTION = timedelta(days=30)
"""How long after its statutory time limit an application's consents stay live, so that
its reviewers can still read what they decided on."""


class Library(Protocol):
    """Where a resident's current documents of some types are found (newest first, by
    type), and their earlier applications (newest first); each is read again from its
    events."""

    def current_documents(
        self, resident_id: str, doc_types: Set[str]
    ) -> dict[str, list[UUID]]: ...

    def applications(self, resident_id: str) -> list[UUID]: ...


class NoticePrinter(Protocol):
    """Prints the document a service issues on approval: its bytes and media type."""

    def notice(self, service: Service, application: Application) -> tuple[bytes, str]: ...


@dataclass(frozen=True)
class MadeCode:
    code: str
    expires_at: datetime
    position: int | None


@dataclass(frozen=True)
class Timing:
    """Where an application stands against its time limit (绩效监督)."""

    due_at: datetime | None
    """When it is due; None while the clock stands still (it moves on by the working days
    the resident takes)."""
    clock: ClockState | None
    """on-time, warning, overdue or paused while open; None once decided or withdrawn."""
    on_time: bool | None
    """Whether it was decided by its due moment; None until it is decided."""
    estimate: bool
    """The calendar does not know a year the limit runs into: Monday to Friday was assumed."""


@dataclass(frozen=True)
class Viewer:
    """Who asks to see an application: a resident (their own), an officer of a department
    that reviews it or owns its service, a clerk of the unit that accepted it, or a
    supervisor of that unit or one above it (the city's, for those made online)."""

    role: str
    subject: str
    department: str | None = None
    unit: str | None = None


@dataclass(frozen=True)
class Material:
    """A material of an application a reviewer may read, and the consent it is read under."""

    resident_id: str
    document_id: UUID
    purpose: str
    consent_id: UUID


@dataclass(frozen=True)
class Accepted:
    application: Application
    consents: list[Consent]
    receipts: list[str]
    """The signed receipt of each consent, as a granted consent has."""
    position: int | None


@dataclass(frozen=True)
class MaterialOutlook:
    """How a material would be taken if the application were accepted now."""

    material: ServiceMaterial
    document: Document | None
    """The library's document that would be attached (证件复用), if there is one."""
    missing_refused: str | None
    """Why it may not be accepted as missing (容缺), or None if it may."""
    commitment_refused: str | None
    """Why a commitment may not replace it (告知承诺), or None if it may."""


@dataclass(frozen=True)
class Preview:
    """What accepting an application at a window would take, before anything is recorded
    (the code is checked, not spent): the resident's tracks, each material, the form filled
    in (反填), when it would be due and when a missing material would have to follow."""

    resident_id: str
    service_id: str
    tracks: tuple[str, ...]
    track_reasons: tuple[str, ...]
    """Why each track applies or not: the requirement, never the resident's credit grade."""
    materials: list[MaterialOutlook]
    form: dict[str, FormValue]
    due_at: datetime
    supply_by: datetime


class Applications:
    def __init__(
        self,
        store: Store,
        residents: Residents,
        documents: Documents,
        policies: Policies,
        catalogues: Catalogues,
        library: Library,
        printer: NoticePrinter,
        sign_receipt: ReceiptSigner,
        calendar: WorkingCalendar,
        clock: Clock,
    ) -> None:
        self._store = store
        self._residents = residents
        self._documents = documents
        self._policies = policies
        self._catalogues = catalogues
        self._library = library
        self._printer = printer
        self._sign_receipt = sign_receipt
        self._calendar = calendar
        self._clock = clock

    def authorization_code(self, resident_id: str, service_id: str) -> MadeCode:
        """A one-use code, valid a few minutes, that the resident gives a window clerk so
        that the clerk may accept one application for ``service_id`` for them."""
        check_known("service_id", "service", service_id)
        self._residents.register(resident_id)
        self._residents.active(resident_id)
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        now = self._clock.now()
        made = AuthorizationCode(
            resident_id=resident_id, code_hash=_hashed(code), service_id=service_id,
            expires_at=now + CODE_LIFETIME, timestamp=now,
        )
        return MadeCode(code, made.expires_at, self._store.save(made))

    def apply(
        self,
        resident_id: str,
        service_id: str,
        *,
        missing: tuple[str, ...] = (),
        commitments: tuple[str, ...] = (),
        form: dict[str, str] | None = None,
        unit: str | None = None,
        clerk: str | None = None,
        authorization_code: str | None = None,
    ) -> Accepted:
        """Accept an application, online (no ``unit``) or at a window of ``unit`` by
        ``clerk`` with the resident's ``authorization_code``: every material is taken from
        the library where the resident's tracks allow reuse and its trust level suffices; a
        material named in ``missing`` is accepted as missing (容缺) only if it is not key and
        the tracks allow it; one named in ``commitments`` is replaced by the resident's
        signed commitment (告知承诺, a trust-D material) only where the service allows it
        for that material and the tracks include ``commitment``."""
        check_resident_id(resident_id)
        check_known("service_id", "service", service_id)
        catalogue = self._catalogues.current()
        service = catalogue.service(service_id)
        window: tuple[str, str, UUID] | None = None
        if unit is not None:
            check_known("unit", "unit", unit)
            if clerk is None or authorization_code is None:
                raise InvalidInput("authorization_code", "a window needs its clerk and the "
                                   "resident's authorization code")
            if not catalogue.accepts(service_id, unit):
                raise ServiceNotAcceptedHere(f"{service_id} is not accepted at {unit}")
            window = (clerk, unit, AuthorizationCode.create_id(
                resident_id=resident_id, code_hash=_hashed(authorization_code)
            ))
        for field, named in (("missing", missing), ("commitments", commitments)):
            for doc_type in named:
                if doc_type not in service.needs:
                    raise InvalidInput(field, f"{doc_type} is no material of {service_id}")
        if set(missing) & set(commitments):
            raise InvalidInput("commitments", "a material is either missing or committed to, "
                               "not both")
        given = self._given(service, form or {})
        def active() -> Resident:
            return self._residents.active(resident_id)

        # Online, the resident is registered on first use, and the first attempt takes them
        # as registered; at a window they are loaded after the code is checked.
        resident_now = active if window is not None else first_then(
            still_active(self._residents.register(resident_id).value), active
        )
        point = self._policies.decision_point()

        def accept() -> Accepted:
            now = self._clock.now()
            # At a window the code comes first: without it the clerk learns nothing of the
            # resident (not even whether the library holds what the service needs).
            spent = [] if window is None else [self._redeemed(window, service_id, now)]
            resident = resident_now()
            tracks = point.tracks(service_id, resident.grade).tracks
            attached: dict[str, Attached] = {}
            held = self._reusable(resident_id, service, tracks, now)
            materials = [
                self._material(m, held.get(m.doc_type), _Asked(missing, commitments), tracks,
                               now, attached)
                for m in service.materials
            ]
            values = fill_form(service.form, given, "resident" if window is None else "clerk",
                               attached, lambda: self._earlier_forms(resident_id))
            until = add_working_days(now, service.statutory_days, self._calendar) + RETENTION
            departments = list(dict.fromkeys(d for step in service.steps for d in step.departments))
            # (in the order Application.departments gives them: consent_of pairs them)
            consents = [
                Consent(
                    resident_id=resident_id, department=department,
                    doc_types=list(service.needs), purpose=service_id, valid_from=now,
                    valid_until=until, max_uses=None, granted_at=now, timestamp=now,
                )
                for department in departments
            ]
            for consent in consents:
                resident.file_consent(consent.id, consent.department, consent.purpose, now)
            application = Application(
                resident_id=resident_id, service_id=service_id, department=service.department,
                channel="online" if unit is None else "window", unit=unit, clerk=clerk,
                tracks=list(tracks), consent_ids=[str(c.id) for c in consents],
                materials=materials, form=values,
                steps=[list(s.departments) for s in service.steps],
                time_limit_days=service.time_limit_days, accepted_at=now,
                due_at=add_working_days(now, service.time_limit_days, self._calendar),
                catalogue_version=catalogue.version, policy_version=point.version,
                timestamp=now,
            )
            position = self._store.save(resident, *consents, application, *spent)
            return Accepted(application, consents, [], position)

        accepted = self._store.retrying(accept)
        receipts = [receipt_for(c, self._sign_receipt) for c in accepted.consents]
        return Accepted(accepted.application, accepted.consents, receipts, accepted.position)

    def preview(
        self, resident_id: str, service_id: str, *, unit: str | None = None,
        authorization_code: str | None = None,
    ) -> Preview:
        """What :meth:`apply` at a window of ``unit`` (or, without one, online in the
        resident's own session) would take now, by the same rules, recording nothing and
        leaving the code unspent; at a window the code is checked first, so that without it
        the clerk learns nothing of the resident."""
        check_resident_id(resident_id)
        check_known("service_id", "service", service_id)
        catalogue = self._catalogues.current()
        service = catalogue.service(service_id)
        now = self._clock.now()
        if unit is not None:
            check_known("unit", "unit", unit)
            if not catalogue.accepts(service_id, unit):
                raise ServiceNotAcceptedHere(f"{service_id} is not accepted at {unit}")
            code = self._store.find(AuthorizationCode.create_id(
                resident_id=resident_id, code_hash=_hashed(authorization_code or "")
            ))
            if not isinstance(code, AuthorizationCode) or not code.usable(service_id, now):
                raise CodeRefused("the authorization code is not valid for this service now")
        resident = self._residents.active(resident_id)
        decided = self._policies.decision_point().tracks(service_id, resident.grade)
        tracks = decided.tracks
        attached: dict[str, Attached] = {}
        outlook: list[MaterialOutlook] = []
        held = self._reusable(resident_id, service, tracks, now)
        for material in service.materials:
            document = held.get(material.doc_type)
            if document is not None and isinstance(document.attributes, dict):
                attached[material.doc_type] = Attached(str(document.id), document.attributes)
            outlook.append(MaterialOutlook(material, document, may_be_missing(material, tracks),
                                           may_be_committed(material, tracks)))
        form = fill_form(service.form, {}, "resident" if unit is None else "clerk", attached,
                         lambda: self._earlier_forms(resident_id))
        return Preview(
            resident_id, service_id, tracks, tuple(r.for_officer for r in decided.reasons),
            outlook, form, add_working_days(now, service.time_limit_days, self._calendar),
            add_working_days(now, SUPPLY_WITHIN_DAYS, self._calendar),
        )

    def timing(self, application: Application) -> Timing:
        """The application's due moment and the state of its clock now, on the working-day
        calendar, with the time the resident was asked for more left out."""
        now = self._clock.now()
        calendar = self._calendar
        start, days = application.accepted_at, application.time_limit_days
        pauses = application.pauses
        state: ClockState | None = None
        due: datetime | None = None
        if application.status.is_open:
            state = clock_state(start, days, now, calendar, pauses)
        if state != "paused":
            due = due_with_pauses(start, days, calendar, pauses)
        decided = application.decided_at
        until = due or now
        return Timing(
            due, state, None if decided is None or due is None else decided <= due,
            estimate=not all(calendar.knows(y) for y in range(start.year, until.year + 1)),
        )

    def working_days_overdue(self, application: Application) -> int:
        """How many working days an open application has run past its time limit now (0
        when it has not, while the clock stands still, or once it is decided)."""
        pauses = application.pauses
        if not application.status.is_open or any(end is None for _, end in pauses):
            return 0
        used = working_days_used(application.accepted_at, self._clock.now(), self._calendar,
                                 pauses)
        return max(0, used - application.time_limit_days)

    def _redeemed(
        self, window: tuple[str, str, UUID], service_id: str, now: datetime
    ) -> AuthorizationCode:
        clerk, unit, code_id = window
        code = self._store.find(code_id)
        if not isinstance(code, AuthorizationCode):
            raise CodeRefused("the authorization code is not valid for this service now")
        code.redeem(service_id, clerk, unit, now)
        return code

    def application(self, application_id: UUID | str) -> Application:
        found = self._store.find(parse_uuid("application_id", application_id))
        if not isinstance(found, Application):
            raise ApplicationNotFound(f"application {application_id} not found")
        return found

    def seen_by(self, viewer: Viewer, application_id: UUID | str) -> Application:
        """The application, if ``viewer`` may see it; to anyone else it does not exist."""
        application = self.application(application_id)
        if not self.may_see(viewer, application):
            raise ApplicationNotFound(f"application {application_id} not found")
        return application

    def history(self, viewer: Viewer, application_id: UUID | str) -> list[Aggregate.Event]:
        """What happened to the application, oldest first (accepted, each decision with its
        reason and what it asked for, each material supplied, withdrawn, rated), to whoever
        may see it."""
        application = self.seen_by(viewer, application_id)
        return self._store.events(application.id)

    def may_see(self, viewer: Viewer, application: Application) -> bool:
        if viewer.role == "resident":
            return application.resident_id == viewer.subject
        if viewer.role == "officer":
            return viewer.department is not None and (
                application.reviews(viewer.department)
                or application.department == viewer.department
            )
        if viewer.role == "clerk":
            return application.unit is not None and application.unit == viewer.unit
        return viewer.role == "supervisor" and self._supervises(viewer.unit, application)

    def _supervises(self, unit: str | None, application: Application) -> bool:
        """Whether a supervisor of ``unit`` watches the application: one of a window of
        the unit or under it, or one made online if the unit is the city."""
        catalogue = self._catalogues.current()
        if unit is None or not catalogue.knows("unit", unit):
            return False
        if application.unit is None:
            return catalogue.unit(unit).parent is None
        return catalogue.knows("unit", application.unit) and catalogue.within(
            application.unit, unit
        )

    def material(
        self, application_id: UUID | str, department: str, doc_type: str
    ) -> Material:
        """A material a reviewing department may read, under the application's consent to
        it; to a department that reviews no step, the application does not exist."""
        check_known("doc_type", "doc_type", doc_type)
        application = self.application(application_id)
        if not application.reviews(department):
            raise ApplicationNotFound(f"application {application_id} not found")
        entry = next((m for m in application.materials if m["doc_type"] == doc_type), None)
        if entry is None or entry["document_id"] is None:
            raise DocumentNotFound(
                f"application {application.number} holds no {doc_type}"
                + ("" if entry is None else f" (it is {entry['source']})")
            )
        return Material(application.resident_id, UUID(entry["document_id"]),
                        application.service_id, application.consent_of(department))

    def decide(
        self,
        application_id: UUID | str,
        *,
        department: str,
        officer: str,
        decision: Decision,
        reason: str,
        asked_for: tuple[str, ...] = (),
    ) -> Written[Application]:
        """A reviewer decides the application's current step; the last approval issues
        the service's document into the resident's library (trust level A)."""
        check_known("department", "department", department)
        check_text("officer", officer, 128)
        check_text("reason", reason, 2000)
        if decision not in ("approve", "return", "reject"):
            raise InvalidInput("decision", "must be approve, return or reject")
        if asked_for:
            service_id = self.application(application_id).service_id
            needs = self._catalogues.current().service(service_id).needs
            for doc_type in asked_for:
                check_known("materials", "doc_type", doc_type)
                if doc_type not in needs:
                    raise InvalidInput("materials", f"{doc_type} is no material of "
                                       f"{service_id}")

        def decided(application: Application, result_document_id: str | None) -> Application:
            application.decide(
                department=department, officer=officer, decision=decision, reason=reason,
                asked_for=list(asked_for), result_document_id=result_document_id,
                at=self._clock.now(), calendar=self._calendar,
            )
            return application

        def decide() -> Written[Application]:
            application = self.application(application_id)
            last = decision == "approve" and application.at_current_step(department) and (
                application.is_last_approval(department)
            )
            if not last:
                return Written(decided(application, None),
                               self._store.save(application))
            # The last approval and the notice it issues are one transaction: both or
            # neither (another reviewer deciding first ends it with nothing filed). Each
            # attempt of the filing decides the application as it stands then.
            approved: list[Application] = []
            application_now = first_then(application, lambda: self.application(application_id))

            def approve(document: Document) -> list[Application]:
                approved[:] = [decided(application_now(), str(document.id))]
                return approved

            issued = self._issue_result(application, officer, approve)
            return Written(approved[0], issued.position)

        return self._store.retrying(decide)

    def supply(
        self, resident_id: str, application_id: UUID | str, doc_type: str,
        document_id: UUID | str,
    ) -> Written[Application]:
        """The resident supplies, from their library, a material asked for (补正) or one the
        application was accepted without (容缺)."""
        check_known("doc_type", "doc_type", doc_type)

        def supply() -> Written[Application]:
            application = self._own(resident_id, application_id)
            document = self._documents.document(resident_id, document_id)
            if document.doc_type != doc_type:
                raise InvalidInput("document_id", f"is a {document.doc_type}, not a {doc_type}")
            document.check_available()
            now = self._clock.now()
            service = self._catalogues.current().service(application.service_id)
            needed = next(
                (m.min_trust for m in service.materials if m.doc_type == doc_type),
                TrustLevel.D,  # no longer a material of the service in force: any will do
            )
            if not document.trust_level.at_least(needed):
                raise InvalidInput(
                    "document_id", f"is trust level {document.trust_level.value}; "
                    f"{application.service_id} needs {needed.value} or better"
                )
            if has_expired(document.expires_at, now):
                raise InvalidInput("document_id", "has expired")
            application.supply(doc_type=doc_type, document_id=str(document.id),
                               trust_level=document.trust_level.value, source="supplement",
                               at=now, calendar=self._calendar)
            return Written(application, self._store.save(application))

        return self._store.retrying(supply)

    def commit(
        self, resident_id: str, application_id: UUID | str, doc_type: str
    ) -> Written[Application]:
        """The resident signs a commitment (告知承诺书, in :func:`commitment_statement`'s
        words) in place of a material their open application was accepted without (容缺):
        only where the service, in the catalogue in force now, allows a commitment for that
        material and the tracks the application was accepted with include ``commitment``
        (:func:`vault.acceptance.may_be_committed`, as at acceptance).

        Re-adjudication (:meth:`vault.services.audit.Audit.readjudicate`) judges the
        acceptance, whose tracks this rests on, not this event: the commitment is judged
        here, once, on those tracks and the catalogue in force when it is signed."""
        check_known("doc_type", "doc_type", doc_type)

        def commit() -> Written[Application]:
            application = self._own(resident_id, application_id)
            if application.status.is_open and doc_type in application.still_missing:
                # (otherwise the application refuses it: closed, or nothing of that missing)
                service = self._catalogues.current().service(application.service_id)
                material = next((m for m in service.materials if m.doc_type == doc_type),
                                None)
                refused = (f"{doc_type} is no longer a material of {service.id}"
                           if material is None
                           else may_be_committed(material, application.tracks))
                if refused is not None:
                    raise InvalidInput("doc_type", refused)
            application.commit(doc_type=doc_type, statement=commitment_statement(doc_type),
                               at=self._clock.now())
            return Written(application, self._store.save(application))

        return self._store.retrying(commit)

    def committable(self, application: Application) -> dict[str, str]:
        """What :meth:`commit` would take now: each material the open application still
        misses (容缺) that a commitment may replace, with the commitment's words."""
        if not application.status.is_open or not application.still_missing:
            return {}
        service = self._catalogues.current().service(application.service_id)
        return {
            m.doc_type: commitment_statement(m.doc_type) for m in service.materials
            if m.doc_type in application.still_missing
            and may_be_committed(m, application.tracks) is None
        }

    def withdraw(self, resident_id: str, application_id: UUID | str) -> Written[Application]:
        def withdraw() -> Written[Application]:
            application = self._own(resident_id, application_id)
            application.withdraw(self._clock.now())
            return Written(application, self._store.save(application))

        return self._store.retrying(withdraw)

    def rate(
        self, resident_id: str, application_id: UUID | str, score: int, comment: str | None
    ) -> Written[Application]:
        if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
            raise InvalidInput("score", "must be a whole number from 1 to 5")
        if comment is not None:
            check_text("comment", comment, 500)

        def rate() -> Written[Application]:
            application = self._own(resident_id, application_id)
            application.rate(score, comment, self._clock.now())
            return Written(application, self._store.save(application))

        return self._store.retrying(rate)

    def _own(self, resident_id: str, application_id: UUID | str) -> Application:
        """The resident's own application; another's looks like none at all."""
        application = self.application(application_id)
        if application.resident_id != resident_id:
            raise ApplicationNotFound(f"application {application_id} not found")
        return application

    def _given(self, service: Service, given: dict[str, str]) -> dict[str, str]:
        """The form's values typed in, each a field of the service's form."""
        fields = {f.field for f in service.form}
        for name, value in given.items():
            if name not in fields:
                raise InvalidInput(f"form.{name[:64]}", f"is no field of {service.id}")
            check_text(f"form.{name}", value, 500)
        return dict(given)

    def _earlier_forms(self, resident_id: str) -> list[EarlierForm]:
        """The forms of the resident's earlier applications, newest first (erased ones
        say nothing)."""
        forms: list[EarlierForm] = []
        earlier_ones = self._store.find_all(self._library.applications(resident_id))
        for earlier in earlier_ones.values():
            if isinstance(earlier, Application) and isinstance(earlier.form, dict):
                forms.append(EarlierForm(earlier.number, earlier.form))
        return forms

    def _material(
        self, material: ServiceMaterial, document: Document | None, asked: _Asked,
        tracks: tuple[str, ...], now: datetime, attached: dict[str, Attached],
    ) -> dict[str, object]:
        """How the application has a material: from the library, ``document`` if there is
        one (it then joins ``attached``, with what it says, for the form), committed to,
        or missing."""
        doc_type, min_trust = material.doc_type, material.min_trust
        if document is not None:
            if isinstance(document.attributes, dict):
                attached[doc_type] = Attached(str(document.id), document.attributes)
            return {"doc_type": doc_type, "source": "library",
                    "document_id": str(document.id),
                    "trust_level": document.trust_level.value, "due_at": None}
        if doc_type in asked.commitments:
            refused = may_be_committed(material, tracks)
            if refused is not None:
                raise InvalidInput("commitments", refused)
            return {"doc_type": doc_type, "source": "commitment", "document_id": None,
                    "trust_level": TrustLevel.D.value, "due_at": None,
                    "statement": commitment_statement(doc_type)}
        if doc_type not in asked.missing:
            raise InvalidInput(
                "missing", f"{doc_type} (trust level {min_trust.value} or better) is not in "
                "the library" + ("" if "reuse" in tracks else " for reuse (no reuse track)")
                + "; upload it first, or name it as missing where that is allowed",
            )
        refused = may_be_missing(material, tracks)
        if refused is not None:
            raise InvalidInput("missing", refused)
        due = add_working_days(now, SUPPLY_WITHIN_DAYS, self._calendar)
        return {"doc_type": doc_type, "source": "missing", "document_id": None,
                "trust_level": None, "due_at": due}

    def _reusable(
        self, resident_id: str, service: Service, tracks: tuple[str, ...], now: datetime,
    ) -> dict[str, Document]:
        """The library's document each material is taken from (证件复用), by document
        type, where the tracks allow reuse and one is attachable."""
        if "reuse" not in tracks:
            return {}
        candidates = self._library.current_documents(resident_id, set(service.needs))
        # The newest of each type, loaded together: nearly always the one attached.
        newest = self._store.find_all(ids[0] for ids in candidates.values() if ids)
        held: dict[str, Document] = {}
        for material in service.materials:
            for document_id in candidates.get(material.doc_type, ()):
                document = (newest[document_id] if document_id in newest
                            else self._store.find(document_id))
                if attachable(document, resident_id, material, now):
                    assert isinstance(document, Document)
                    held[material.doc_type] = document
                    break
        return held

    def _issue_result(
        self, application: Application, officer: str,
        together: Callable[[Document], Sequence[object]],
    ) -> Written[Document]:
        service = self._catalogues.current().service(application.service_id)
        content, content_type = self._printer.notice(service, application)
        return self._documents.issue(
            service.department, officer, application.resident_id, [content],
            DocumentDetails(service.issues, f"{service.name_zh} {application.number}",
                            content_type),
            request_id=f"application:{application.id}", together=together,
        )


@dataclass(frozen=True)
class _Asked:
    """What the resident asked to be accepted without: as missing, or by commitment."""

    missing: tuple[str, ...]
    commitments: tuple[str, ...]


def commitment_statement(doc_type: str) -> str:
    """The commitment (告知承诺书) a resident makes in place of a material: its words, kept
    with the application's acceptance, which the resident made in their own session or
    authorised at the window with their code."""
    entry = catalogue().entries.get(("doc_type", doc_type))
    name = entry.name_zh if entry else doc_type
    return (f"本人承诺：本人符合本事项的申请条件，所述{name}相关情况真实有效；如有不实，"
            "愿意承担相应法律责任，并同意撤销所办事项。")


def _hashed(code: str) -> str:
    """What is kept of a code: its SHA-256 (lower-case hex), the code read case-blind."""
    return hashlib.sha256(code.strip().upper().encode()).hexdigest()
