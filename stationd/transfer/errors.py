"""What a failed transfer tells its caller."""

from __future__ import annotations


class TransferError(Exception):
    """A download or upload failed; ``reason`` says why in plain words (never a credential).

    ``retry`` is False when trying again cannot help (the file is too big, the scheme is not
    supported, the URL is malformed): a caller with retries left gives up at once."""

    def __init__(self, reason: str, *, retry: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry
