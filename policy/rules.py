"""Policy text: parsing and checking the rules a policy officer writes in ``policy.csv``.

The file is Casbin's CSV policy format for ``model.conf``. Lines are split the
way Casbin splits them (on commas, tokens trimmed; ``#`` starts a comment), and
every field is checked, so a file that passes here loads into Casbin unchanged
and means the same thing there.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib.resources import files

from policy.scales import Grade, TrustLevel

ACCESS, TRACK, ATTEST, ROLE = "p", "p2", "p3", "g"
TRACKS = ("reuse", "missing-allowed", "commitment", "priority")
ACTS = ("issue", "verify")
"""How a department attests a document: issuing it (trust level A) or verifying it
against the original (trust level B)."""
EVERY_OFFICER = "officer"
"""The principal every officer is in their own department (see model.conf)."""

_IDENTIFIER = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
_MEMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_FIELDS = {
    ACCESS: ("role", "department", "doc_type", "purpose", "min_grade", "min_trust"),
    TRACK: ("service", "min_grade", "track"),
    ATTEST: ("role", "department", "doc_type", "act"),
    ROLE: ("member", "role", "department"),
}


def model_text() -> str:
    """The Casbin model the decision point implements."""
    return files("policy").joinpath("model.conf").read_text(encoding="utf-8")


def default_policy_text() -> str:
    """The policy shipped with civicvault."""
    return files("policy").joinpath("policy.csv").read_text(encoding="utf-8")


def policy_version(model: str, rules: str) -> str:
    """The content hash that names a policy version (SHA-256, hex)."""
    digest = hashlib.sha256(b"civicvault-policy-v1\x00")
    digest.update(model.encode())
    digest.update(b"\x00")
    digest.update(rules.encode())
    return digest.hexdigest()


class PolicyError(ValueError):
    """A policy file that cannot be published; names the line and the reason."""

    def __init__(self, line: int | None, reason: str) -> None:
        super().__init__(reason if line is None else f"line {line}: {reason}")
        self.line = line
        self.reason = reason


@dataclass(frozen=True)
class AccessRule:
    """``p``: a role in a department may fetch a document type for a purpose."""

    line: int
    role: str
    department: str
    doc_type: str
    purpose: str
    min_grade: Grade
    min_trust: TrustLevel

    def text(self) -> str:
        return (
            f"p, {self.role}, {self.department}, {self.doc_type}, {self.purpose}, "
            f"{self.min_grade.value}, {self.min_trust.value}"
        )


@dataclass(frozen=True)
class TrackRule:
    """``p2``: a fast-track track for a service from a minimum credit grade."""

    line: int
    service: str
    min_grade: Grade
    track: str


@dataclass(frozen=True)
class AttestRule:
    """``p3``: a role in a department may issue (or verify) a document type."""

    line: int
    role: str
    department: str
    doc_type: str
    act: str

    def text(self) -> str:
        return f"p3, {self.role}, {self.department}, {self.doc_type}, {self.act}"


@dataclass(frozen=True)
class RoleLink:
    """``g``: a member (an officer, ``officer`` or a role) holds a role in a department."""

    line: int
    member: str
    role: str
    department: str


@dataclass(frozen=True)
class PolicyRules:
    access: tuple[AccessRule, ...]
    tracks: tuple[TrackRule, ...]
    links: tuple[RoleLink, ...]
    attestations: tuple[AttestRule, ...] = ()


def parse_policy(text: str) -> PolicyRules:
    """Parse and check a policy file; the first bad line raises :class:`PolicyError`."""
    access: list[AccessRule] = []
    tracks: list[TrackRule] = []
    links: list[RoleLink] = []
    attestations: list[AttestRule] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        kind, *values = (token.strip() for token in line.split(","))
        if kind not in _FIELDS:
            raise PolicyError(number, f"unknown rule type {kind!r}; expected p, p2, p3 or g")
        names = _FIELDS[kind]
        if len(values) != len(names):
            raise PolicyError(
                number, f"a {kind} rule has {len(names)} fields ({', '.join(names)}), "
                f"this one has {len(values)}"
            )
        fields = dict(zip(names, values, strict=True))
        if kind == ACCESS:
            access.append(_access_rule(number, fields))
        elif kind == TRACK:
            tracks.append(_track_rule(number, fields))
        elif kind == ATTEST:
            attestations.append(_attest_rule(number, fields))
        else:
            links.append(_role_link(number, fields))
    if not access:
        raise PolicyError(None, "the policy has no access (p) rules")
    return PolicyRules(tuple(access), tuple(tracks), tuple(links), tuple(attestations))


def _access_rule(line: int, fields: dict[str, str]) -> AccessRule:
    for name in ("role", "department", "doc_type", "purpose"):
        _identifier(line, name, fields[name])
    return AccessRule(
        line,
        fields["role"],
        fields["department"],
        fields["doc_type"],
        fields["purpose"],
        _grade(line, fields["min_grade"]),
        _trust(line, fields["min_trust"]),
    )


def _track_rule(line: int, fields: dict[str, str]) -> TrackRule:
    _identifier(line, "service", fields["service"])
    if fields["track"] not in TRACKS:
        raise PolicyError(line, f"track {fields['track']!r} is not one of {', '.join(TRACKS)}")
    return TrackRule(line, fields["service"], _grade(line, fields["min_grade"]), fields["track"])


def _attest_rule(line: int, fields: dict[str, str]) -> AttestRule:
    for name in ("role", "department", "doc_type"):
        _identifier(line, name, fields[name])
    if fields["act"] not in ACTS:
        raise PolicyError(line, f"act {fields['act']!r} is not one of {', '.join(ACTS)}")
    return AttestRule(
        line, fields["role"], fields["department"], fields["doc_type"], fields["act"]
    )


def _role_link(line: int, fields: dict[str, str]) -> RoleLink:
    if not _MEMBER.fullmatch(fields["member"]):
        raise PolicyError(line, f"member {fields['member']!r} is not a valid officer or role id")
    _identifier(line, "role", fields["role"])
    _identifier(line, "department", fields["department"])
    if fields["role"] == EVERY_OFFICER:
        raise PolicyError(line, f"{EVERY_OFFICER!r} is every officer, it cannot be granted")
    return RoleLink(line, fields["member"], fields["role"], fields["department"])


def _identifier(line: int, name: str, value: str) -> None:
    if not _IDENTIFIER.fullmatch(value) or len(value) > 64:
        raise PolicyError(
            line, f"{name} {value!r} must be lower-case ASCII words joined by hyphens"
        )


def _grade(line: int, value: str) -> Grade:
    try:
        return Grade(value)
    except ValueError:
        raise PolicyError(line, f"min_grade {value!r} is not one of A, B, C, D") from None


def _trust(line: int, value: str) -> TrustLevel:
    try:
        return TrustLevel(value)
    except ValueError:
        raise PolicyError(line, f"min_trust {value!r} is not one of A, B, C, D") from None
