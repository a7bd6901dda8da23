"""A believable demo city for `civicvault serve --demo`: residents, departments,
documents, consents and grades, and six weeks of applications at its windows
(:mod:`adapters.demo_city`), seeded once, plus tokens and curl lines to try it with."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TextIO

from adapters.demo_city import (
    CLERKS,
    HISTORY,
    DemoClock,
    id_card_attributes,
    seed_applications,
)
from adapters.samples import sample_pdf, sample_png
from adapters.wiring import Services
from keys.tokens import Role, issue_token
from policy.catalogue import display_name
from policy.scales import Grade
from vault.document import Document
from vault.errors import ResidentNotFound
from vault.inputs import ConsentRequest, DocumentDetails, GradeUpdate


@dataclass(frozen=True)
class Person:
    resident_id: str
    name: str
    grade: Grade | None


PEOPLE = (
    Person("zhang-wei", "张伟", Grade.A),
    Person("li-na", "李娜", Grade.B),
    Person("wang-fang", "王芳", Grade.D),
    Person("chen-jie", "陈杰", None),
)


def seed(services: Services, clock: DemoClock | None = None) -> bool:
    """Seed the city unless it is already there; True if it was seeded now. With the
    ``clock`` the services run on, its history begins six weeks ago (else all of it now)."""
    residents = services.residents
    try:
        residents.resident(PEOPLE[0].resident_id)
        return False
    except ResidentNotFound:
        pass
    ends = services.clock.now()
    start = ends - HISTORY
    if clock is not None:
        clock.wind_to(start)
    try:
        # The demo's consents last a month from when the seeding ends (real time), not from
        # the start of its history, which would leave them expired when serving begins.
        _seed_community(services, consents_until=ends + timedelta(days=30))
        seed_applications(services, clock, start)
    finally:
        if clock is not None:
            clock.resume()
    return True


def _seed_community(services: Services, *, consents_until: datetime) -> None:
    residents, documents = services.residents, services.documents
    now = services.clock.now()
    residents.record_grades(
        [GradeUpdate(p.resident_id, p.grade, now, 1) for p in PEOPLE if p.grade is not None]
    )
    for n, person in enumerate(PEOPLE):
        documents.issue(
            "public-security", "officer-zhao", person.resident_id,
            io.BytesIO(sample_png(seed=n)),
            DocumentDetails("id-card", f"居民身份证 {person.name}", "image/png", "id-card.png",
                            expires_at=now + timedelta(days=3650),
                            attributes=id_card_attributes(person.name, n)),
        )
        household = documents.submit(
            person.resident_id,
            io.BytesIO(sample_pdf(f"Household register {person.resident_id}")),
            DocumentDetails("household-register", f"户口簿 {person.name}", "application/pdf",
                            "hukou.pdf"),
        )
        if person.grade in (Grade.A, Grade.B):
            documents.verify("civil-affairs", "officer-li", household.value.id)
    documents.submit(
        "zhang-wei", io.BytesIO(sample_pdf("Income proof 2026")),
        DocumentDetails("income-proof", "收入证明 张伟 2026", "application/pdf", "income.pdf"),
    )
    documents.submit(
        "li-na", io.BytesIO(sample_pdf("Property certificate")),
        DocumentDetails("property-cert", "不动产权证书 李娜", "application/pdf", "property.pdf"),
    )
    documents.submit(
        "chen-jie", io.BytesIO(sample_pdf("Diploma")),
        DocumentDetails("diploma", "毕业证书 陈杰", "application/pdf", "diploma.pdf"),
    )
    for resident_id, department, doc_types, purpose in (
        ("zhang-wei", "civil-affairs", ("id-card", "household-register", "income-proof"),
         "subsistence-allowance"),
        ("li-na", "housing", ("id-card", "property-cert"), "housing-subsidy"),
        ("wang-fang", "housing", ("id-card",), "housing-subsidy"),
        ("chen-jie", "human-resources", ("id-card", "diploma"), "employment-subsidy"),
    ):
        services.consents.grant(
            resident_id,
            ConsentRequest(department, doc_types, purpose, valid_until=consents_until),
        )


def print_welcome(services: Services, base_url: str, out: TextIO) -> None:
    """URLs, a token per actor, and three curl lines to try."""
    settings = services.settings
    key = services.signing.current("tokens")
    ttl = min(timedelta(hours=12), timedelta(seconds=settings.token_max_lifetime_seconds))

    def token(
        role: Role, subject: str, department: str | None = None, unit: str | None = None
    ) -> str:
        return issue_token(
            key, role=role, subject=subject, department=department, ttl=ttl,
            issuer=settings.token_issuer, audience=settings.token_audience,
            now=services.clock.now(), unit=unit,
        )

    tokens = {
        "resident 张伟 (zhang-wei)": token("resident", "zhang-wei"),
        "officer of 民政局 (civil-affairs)": token("officer", "officer-li", "civil-affairs"),
        "officer of 住建局 (housing)": token("officer", "officer-zhou", "housing"),
        "auditor": token("auditor", "auditor-sun"),
        "credit platform": token("credit-platform", "credit-platform"),
        "clerk at 和平里社区 (heping-lane)": token("clerk", CLERKS["heping-lane"],
                                                unit="heping-lane"),
        "supervisor of 东城区 (dongcheng)": token("supervisor", "supervisor-zhao",
                                               unit="dongcheng"),
        "supervisor of 滨江市 (binjiang, the city)": token("supervisor", "supervisor-qian",
                                                       unit="binjiang"),
    }
    id_card = _first_id_card(services, "zhang-wei")
    wang_card = _first_id_card(services, "wang-fang")
    print(f"\ncivicvault is serving on {base_url}", file=out)
    print(f"  pages:      {base_url}/signin  (pick one of the demo's people: a resident, a "
          "window clerk, a reviewer, a supervisor, an auditor)", file=out)
    print(f"  API docs:   {base_url}/docs", file=out)
    print(f"  OpenAPI:    {base_url}/openapi.json", file=out)
    print(f"  health:     {base_url}/healthz  {base_url}/readyz  {base_url}/metrics", file=out)
    print("\nDemo tokens (valid 12 hours):", file=out)
    for who, value in tokens.items():
        print(f"  {who}:\n    {value}", file=out)
    civil, housing, resident = (
        tokens["officer of 民政局 (civil-affairs)"],
        tokens["officer of 住建局 (housing)"],
        tokens["resident 张伟 (zhang-wei)"],
    )
    purpose = display_name("service", "subsistence-allowance")
    print("\nTry:", file=out)
    print(f"  # 民政局 fetches 张伟's ID card for {purpose} — allowed, and recorded", file=out)
    print(
        f"  curl -sS -o id-card.png -w '%{{http_code}}\\n' -H 'Authorization: Bearer {civil}' "
        f"'{base_url}/v1/residents/zhang-wei/documents/{id_card.id}/content"
        "?purpose=subsistence-allowance'",
        file=out,
    )
    print(
        "  # 住建局 asks for 王芳's ID card for 住房补贴 — denied (403): her grade is D; the "
        "reasons (or, once a better grade is pushed, the image) go to ./wang-fang-id-card",
        file=out,
    )
    print(
        f"  curl -sS -o wang-fang-id-card -w '%{{http_code}} %{{content_type}}\\n' "
        f"-H 'Authorization: Bearer {housing}' "
        f"'{base_url}/v1/residents/wang-fang/documents/{wang_card.id}/content"
        "?purpose=housing-subsidy'",
        file=out,
    )
    print("  # 张伟 sees who touched his data", file=out)
    print(
        f"  curl -sS -H 'Authorization: Bearer {resident}' '{base_url}/v1/me/access-log'",
        file=out,
    )
    clerk = tokens["clerk at 和平里社区 (heping-lane)"]
    district = tokens["supervisor of 东城区 (dongcheng)"]
    print("  # 张伟 makes a one-use code for the window (张伟 says it to the clerk) …", file=out)
    print(
        f"  curl -sS -H 'Authorization: Bearer {resident}' -H 'Content-Type: application/json' "
        f"-d '{{\"service_id\": \"elderly-card\"}}' '{base_url}/v1/me/authorization-codes'",
        file=out,
    )
    print("  # … and the clerk at 和平里社区 accepts his 老年人优待证 application with it "
          "(一口受理): the ID card comes from his library", file=out)
    print(
        f"  curl -sS -H 'Authorization: Bearer {clerk}' -H 'Content-Type: application/json' "
        f"-d '{{\"service_id\": \"elderly-card\", \"resident_id\": \"zhang-wei\", "
        f"\"authorization_code\": \"CODE\"}}' '{base_url}/v1/applications'",
        file=out,
    )
    print("  # 民政局's queue, soonest due first", file=out)
    print(f"  curl -sS -H 'Authorization: Bearer {civil}' '{base_url}/v1/work/queue'", file=out)
    print("  # 东城区's figures by street and community (绩效监督), and what is overdue", file=out)
    print(
        f"  curl -sS -H 'Authorization: Bearer {district}' "
        f"'{base_url}/v1/supervision/figures?by=unit'",
        file=out,
    )
    print(
        f"  curl -sS -H 'Authorization: Bearer {district}' '{base_url}/v1/supervision/overdue'",
        file=out,
    )
    out.flush()


def _first_id_card(services: Services, resident_id: str) -> Document:
    """The resident's newest current ID card, read from the records (the read models may
    still be behind)."""
    resident = services.residents.resident(resident_id)
    documents = map(services.documents.find, reversed(resident.document_ids))
    return next(d for d in documents if d.doc_type == "id-card" and d.is_active)
