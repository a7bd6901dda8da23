"""Consent receipts: a compact JWS (EdDSA / Ed25519) a resident can keep and check.

The claims follow the Kantara Initiative Consent Receipt v1.1 shape (the basis
of ISO/IEC TS 27560 consent records): who the principal and the controller
are, which service and purpose, which categories of data, when consent ends,
and to which third party the data is disclosed. Anyone holding the public key
can verify a receipt; nothing else is needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from keys.signing import SigningKey

RECEIPT_TYPE = "consent-receipt+jwt"
_ISSUER = "civicvault"


@dataclass(frozen=True)
class ConsentTerms:
    """What a resident agreed to, as it goes on the receipt."""

    consent_id: str
    resident_id: str
    department: str
    doc_types: tuple[str, ...]
    purpose: str
    valid_from: datetime
    valid_until: datetime
    max_uses: int | None
    granted_at: datetime
    controller: str = "civicvault"
    jurisdiction: str = "CN"


class InvalidReceipt(Exception):
    """The receipt's signature, key id or shape does not check out."""


def sign_consent_receipt(key: SigningKey, terms: ConsentTerms) -> str:
    """A compact JWS over the consent's terms, signed with ``key``."""
    claims: dict[str, Any] = {
        "iss": _ISSUER,
        "sub": terms.resident_id,
        "iat": int(terms.granted_at.timestamp()),
        "version": "KI-CR-v1.1.0",
        "jurisdiction": terms.jurisdiction,
        "consentTimestamp": int(terms.granted_at.timestamp()),
        "collectionMethod": "civicvault resident API",
        "consentReceiptID": terms.consent_id,
        "language": "zh-CN",
        "piiPrincipalId": terms.resident_id,
        "piiControllers": [{"piiController": terms.controller}],
        "services": [
            {
                "service": terms.purpose,
                "purposes": [
                    {
                        "purpose": terms.purpose,
                        "purposeCategory": ["public-service"],
                        "consentType": "EXPLICIT",
                        "piiCategory": list(terms.doc_types),
                        "primaryPurpose": True,
                        "validFrom": terms.valid_from.isoformat(),
                        "termination": terms.valid_until.isoformat(),
                        "maxUses": terms.max_uses,
                        "thirdPartyDisclosure": True,
                        "thirdPartyName": terms.department,
                    }
                ],
            }
        ],
        "sensitive": True,
    }
    return jwt.encode(
        claims,
        key.private_key,
        algorithm="EdDSA",
        headers={"kid": key.kid, "typ": RECEIPT_TYPE},
    )


def verify_consent_receipt(
    token: str, public_keys: Mapping[str, Ed25519PublicKey] | Ed25519PublicKey
) -> dict[str, Any]:
    """Check a receipt's signature and return its claims; raises :class:`InvalidReceipt`."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as e:
        raise InvalidReceipt(f"not a compact JWS: {e}") from None
    if header.get("alg") != "EdDSA" or header.get("typ") != RECEIPT_TYPE:
        raise InvalidReceipt("not an EdDSA consent receipt")
    if isinstance(public_keys, Ed25519PublicKey):
        key = public_keys
    else:
        kid = header.get("kid")
        if not isinstance(kid, str) or kid not in public_keys:
            raise InvalidReceipt(f"unknown key id {kid!r}")
        key = public_keys[kid]
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=["EdDSA"],
            issuer=_ISSUER,
            options={"require": ["iss", "sub", "iat", "consentReceiptID"], "verify_exp": False},
        )
    except jwt.PyJWTError as e:
        raise InvalidReceipt(f"receipt does not verify: {e}") from None
    return claims
