"""What the provider says about a person in an ID token: the claims the city's identity
provider would carry (a resident id, a role, a department, a unit), read from the people
the tests registered (``people.json`` in the provider's state folder)."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from django.conf import settings
from oauth2_provider.oauth2_validators import OAuth2Validator

CITY_CLAIMS = ("name", "resident_id", "role", "dept", "unit")


class CityClaims(OAuth2Validator):  # type: ignore[misc]
    oidc_claim_scope: ClassVar[dict[str, str]] = {**OAuth2Validator.oidc_claim_scope,
                                                  **{claim: "profile" for claim in CITY_CLAIMS}}

    def get_additional_claims(self, request: Any) -> dict[str, Any]:
        people = json.loads((settings.STATE / "people.json").read_text())
        person = people[request.user.username]
        return {claim: value for claim, value in person["claims"].items()
                if claim in CITY_CLAIMS}
