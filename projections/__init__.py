"""Read models built from the notification log (the library, consents, access log, ledger)."""
