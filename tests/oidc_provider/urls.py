"""The provider's addresses: its login page, and the OpenID Provider under ``/o/`` (so the
issuer is ``http://127.0.0.1:<port>/o``)."""

from __future__ import annotations

from django.contrib.auth import views as auth
from django.urls import include, path

urlpatterns = [
    path("login/", auth.LoginView.as_view(), name="login"),
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
]
