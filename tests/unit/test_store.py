"""The store's helpers for read-decide-save steps."""

from __future__ import annotations

from vault.store import first_then


def test_a_step_takes_what_was_loaded_first_and_loads_afresh_on_each_retry() -> None:
    loads: list[int] = []

    def load() -> str:
        loads.append(1)
        return f"loaded {len(loads)}"

    now = first_then("loaded before the step", load)
    assert now() == "loaded before the step"
    assert loads == []
    assert now() == "loaded 1"
    assert now() == "loaded 2"
