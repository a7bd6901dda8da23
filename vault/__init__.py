"""The domain: residents, documents and consents as event-sourced aggregates,
and the application service with the commands and queries people use."""
