"""The document a service issues on approval, printed as a one-page PDF."""

from __future__ import annotations

from adapters.samples import sample_pdf
from policy.catalogue import Service
from vault.application import Application


class PdfNotices:
    """Prints an approval notice: which service, which application, when decided."""

    def notice(self, service: Service, application: Application) -> tuple[bytes, str]:
        text = f"{service.name_en} - application {application.number} approved"
        return sample_pdf(text), "application/pdf"
