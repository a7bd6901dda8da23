"""What a personal field reads as when it cannot be shown: erased for good, or left sealed.

Events keep their owner's personal fields (titles, file names, grades, reasons) sealed
with the owner's key. Once the owner is erased the key is gone and those fields read as
:data:`ERASED`; a reader that asked not to open them (a fold that does not need them)
sees :data:`SEALED`.
"""

from __future__ import annotations

from typing import ClassVar, Final, Self, cast


class _Marker:
    """A value standing in for a personal field that cannot be shown: one instance per
    kind, named by its class."""

    _instances: ClassVar[dict[type, _Marker]] = {}

    def __new__(cls) -> Self:
        if cls not in _Marker._instances:
            _Marker._instances[cls] = super().__new__(cls)
        return cast(Self, _Marker._instances[cls])

    def __repr__(self) -> str:
        return type(self).__name__.upper()


class Erased(_Marker):
    """What a personal field reads as once its owner has been erased."""

    def __bool__(self) -> bool:
        return False


ERASED: Final = Erased()


class Sealed(_Marker):
    """What a personal field reads as when the reader asked not to open it."""


SEALED: Final = Sealed()
