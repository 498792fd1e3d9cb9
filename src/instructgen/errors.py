"""The few exceptions the stages raise. Each carries a reason a person can act on."""


class InstructgenError(Exception):
    """An error the CLI reports as one line (no traceback) and exits non-zero."""


class BadRecord(InstructgenError):
    """A row that cannot be read as the expected format; the reason goes to the rejects file."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class CannotRepresent(InstructgenError):
    """A record the target format cannot hold at all (not even lossily), e.g. no user turn for alpaca."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Ambiguous(InstructgenError):
    """Format detection found more than one (or no) format that fits."""
