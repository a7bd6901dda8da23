"""Errors raised by the key layer; each names what went wrong."""


class KeyLayerError(Exception):
    """Base class for key-layer errors."""


class TamperedDocument(KeyLayerError):
    """A sealed document failed authentication: altered, truncated, reordered or spliced."""


class TamperedSecret(KeyLayerError):
    """A wrapped key or sealed field failed authentication."""


class ResidentKeyShredded(KeyLayerError):
    """The resident's data key was destroyed (crypto-shredded); their data cannot be read."""


class UnknownResidentKey(KeyLayerError):
    """No data key was ever created for this resident."""


class UnknownMasterKey(KeyLayerError):
    """A key is wrapped by a master key that is not configured here."""


class BadMasterKey(KeyLayerError):
    """The configured master key is not 32 bytes of base64."""
