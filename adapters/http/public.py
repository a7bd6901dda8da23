"""Open endpoints: liveness, readiness, metrics, and the public keys that verify our tokens
and the ledger's checkpoints."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from keys.tokens import public_jwk

router = APIRouter(tags=["open"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "a store is unreachable"}})
def readyz(request: Request) -> JSONResponse:
    """The database and the blob store answer; 503 names whichever does not."""
    services = request.app.state.services
    checks: dict[str, str] = {}
    for name, probe in (
        ("database", services.events.head),
        ("blobs", lambda: next(iter(services.blobs.list()), None)),
    ):
        try:
            probe()
            checks[name] = "ok"
        except Exception as e:  # any failure means not ready
            checks[name] = f"unavailable: {type(e).__name__}"
    if checks["database"] == "ok":
        behind, seconds = services.view_runner.lag()
        bound = services.settings.max_projection_lag_seconds
        checks["read_models"] = (
            "ok" if seconds <= bound else f"behind by {behind} events ({seconds:.0f} s)"
        )
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus text format."""
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )


@router.get("/.well-known/jwks.json")
def jwks(request: Request) -> dict[str, Any]:
    """The public keys that verify this vault's tokens (RFC 7517, OKP/Ed25519)."""
    keys = request.app.state.services.signing.public_keys("tokens", retired=False)
    return {"keys": [public_jwk(kid, key) for kid, key in keys.items()]}


@router.get("/.well-known/checkpoint-keys.json")
def checkpoint_keys(request: Request) -> dict[str, Any]:
    """The public keys that verify the ledger's checkpoints (signed tree heads), retired
    ones included, as a JWK set (OKP/Ed25519)."""
    return _key_set(request, "checkpoints")


@router.get("/.well-known/receipt-keys.json")
def receipt_keys(request: Request) -> dict[str, Any]:
    """The public keys that verify consent receipts (compact JWS, EdDSA), retired ones
    included, as a JWK set (OKP/Ed25519): a resident checks the receipt they were given
    with the key its header's ``kid`` names."""
    return _key_set(request, "receipts")


def _key_set(request: Request, purpose: str) -> dict[str, Any]:
    keys = request.app.state.services.signing.public_keys(purpose)
    return {"keys": [public_jwk(kid, key) for kid, key in keys.items()]}
