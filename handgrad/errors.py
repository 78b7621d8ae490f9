"""The error a malformed record raises, shared by the record and the shape parser."""


class DerivationError(ValueError):
    """A record, or what its functions return, is malformed. The message names the fix."""
