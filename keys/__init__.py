"""Cryptography for civicvault: envelope encryption, per-resident keys,
crypto-shredding, signing keys and consent receipts. Imports nothing of ours."""
