"""The two scales every decision rests on: credit grade and document trust level."""

from __future__ import annotations

from enum import StrEnum


class Grade(StrEnum):
    """Credit grade pushed by the credit platform: A (守信) is best, D (失信) worst."""

    A = "A"
    B = "B"
    C = "C"
    D = "D"

    @property
    def rank(self) -> int:
        """Higher is better: A=4 … D=1."""
        return _GRADE_RANK[self]

    def at_least(self, other: Grade) -> bool:
        return self.rank >= other.rank


_GRADE_RANK = {Grade.A: 4, Grade.B: 3, Grade.C: 2, Grade.D: 1}

UNRATED = "unrated"
"""A resident with no grade yet. Access decisions treat them as C; they earn no fast-track."""

UNRATED_GRADE_FOR_ACCESS = Grade.C


class TrustLevel(StrEnum):
    """How far a document can be trusted (after 国办函〔2016〕108号)."""

    A = "A"  # issued by the issuing department
    B = "B"  # checked against the original by an officer
    C = "C"  # uploaded by the resident
    D = "D"  # self-declared by commitment (告知承诺)

    @property
    def rank(self) -> int:
        return _TRUST_RANK[self]

    def at_least(self, other: TrustLevel) -> bool:
        return self.rank >= other.rank


_TRUST_RANK = {TrustLevel.A: 4, TrustLevel.B: 3, TrustLevel.C: 2, TrustLevel.D: 1}
