"""Runs the test identity provider on 127.0.0.1: ``python -m tests.oidc_provider.run STATE
PORT``. It makes its database and signing key in STATE, registers the people of
``people.json`` and the relying parties of ``clients.json`` there, and serves until stopped."""

from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path


def main(state: Path, port: int) -> None:
    _keys(state)
    os.environ["OIDC_PROVIDER_STATE"] = str(state)
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.oidc_provider.settings"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    _register(state)
    import uvicorn
    from django.core.asgi import get_asgi_application

    uvicorn.run(get_asgi_application(), host="127.0.0.1", port=port, log_level="warning",
                lifespan="off")


def _keys(state: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    if not (state / "signing-key.pem").exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (state / "signing-key.pem").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
    if not (state / "django-secret").exists():
        (state / "django-secret").write_text(secrets.token_urlsafe(48))


def _register(state: Path) -> None:
    from django.contrib.auth.models import User
    from oauth2_provider.models import Application

    for username, person in json.loads((state / "people.json").read_text()).items():
        if not User.objects.filter(username=username).exists():
            User.objects.create_user(username, password=person["password"])
    for client in json.loads((state / "clients.json").read_text()):
        Application.objects.update_or_create(
            client_id=client["client_id"],
            defaults={
                "name": client["client_id"],
                "client_secret": client["client_secret"],
                "client_type": Application.CLIENT_CONFIDENTIAL,
                "authorization_grant_type": Application.GRANT_AUTHORIZATION_CODE,
                "redirect_uris": " ".join(client["redirect_uris"]),
                "post_logout_redirect_uris": " ".join(client["post_logout_redirect_uris"]),
                "algorithm": Application.RS256_ALGORITHM,
                "skip_authorization": True,
            },
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
