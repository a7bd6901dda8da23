"""The domain: residents, documents, consents and access attempts as event-sourced
aggregates, and the services (``vault.services``) with the commands and queries people use."""
