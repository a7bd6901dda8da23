"""The access log as residents see it: each entry with its leaf and its inclusion proof in
the latest checkpoint (the API's ``/v1/me/access-log`` and the resident's page's)."""

from __future__ import annotations

from collections.abc import Sequence

from adapters.http.schemas import (
    AccessLogPage,
    LedgerEntryOut,
    LoggedAccessOut,
    access_entry_out,
    b64,
    checkpoint_out,
    inclusion_out,
)
from projections.ledger import Ledger
from projections.queries import AccessEntry


def logged_accesses(
    items: Sequence[AccessEntry], ledger: Ledger, next_cursor: str | None = None
) -> AccessLogPage:
    """A page of the access log: each entry with its leaf and its inclusion proof in the
    latest checkpoint, if that covers it (the API's and the resident's page's)."""
    checkpoint = ledger.latest_checkpoint()
    covered = [a.position for a in items if checkpoint and a.position <= checkpoint.tree_size]
    proofs = ledger.inclusions(covered, checkpoint.tree_size) if checkpoint and covered else {}
    leaves = ledger.records(covered)
    return AccessLogPage(
        items=[
            LoggedAccessOut(
                **access_entry_out(a).model_dump(),
                ledger=(
                    LedgerEntryOut(
                        **inclusion_out(proofs[a.position]).model_dump(),
                        leaf=b64(leaves[a.position]),
                    )
                    if a.position in proofs and a.position in leaves
                    else None
                ),
            )
            for a in items
        ],
        next_cursor=next_cursor,
        checkpoint=checkpoint_out(checkpoint) if checkpoint else None,
    )
