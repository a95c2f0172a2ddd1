"""The error type that the double's HTTP layer turns into a plain-text response."""

from __future__ import annotations


class ApiError(Exception):
    """A request failure with the HTTP status and the plain-text body Nomad would send."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
