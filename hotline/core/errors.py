"""Domain errors. Each has a stable id that the API returns as {"error": id, "message": ...}."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error hotline reports to a user or an API client."""

    error_id = "internal"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    error_id = "not-found"
    status = 404


class NoSuchAgent(NotFound):
    error_id = "no-such-agent"


class NoSuchCall(NotFound):
    error_id = "no-such-call"


class Conflict(DomainError):
    error_id = "conflict"
    status = 409


class IllegalTransition(Conflict):
    """A state machine has no transition for this event in its current state."""

    error_id = "illegal-transition"


class InvalidRequest(DomainError):
    error_id = "invalid-request"
    status = 400


class Unavailable(DomainError):
    """A dependency (Redis, the ticket store, a worker) is not reachable right now."""

    error_id = "unavailable"
    status = 503


class ConfigError(DomainError):
    error_id = "config"
    status = 500
