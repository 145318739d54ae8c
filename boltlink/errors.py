"""Every error boltlink raises on purpose, and how each one reaches a user.

Each class maps once to an HTTP problem (RFC 9457) and a CLI exit code, so
handlers and commands raise and never build error output themselves.

    BoltlinkError                 500  exit 1
    ├── ConfigError               500  exit 2   bad boltlink.toml, env or flag
    ├── StoreError                500  exit 1
    │   ├── StoreUnavailable      503  exit 3   database unreachable
    │   └── MigrationError        500  exit 3   schema cannot be brought up to date
    ├── InvalidInput              422  exit 2   carries the offending field(s)
    ├── Unauthorized              401  exit 2   no, unknown or expired API key
    ├── Forbidden                 403  exit 2   key lacks the scope
    ├── NotFound                  404  exit 4
    │   └── LinkNotFound
    ├── Conflict                  409  exit 5
    │   ├── SlugTaken
    │   └── DeleteProtected       a link with many clicks needs ?force=true
    ├── Gone                      410  exit 4
    │   ├── LinkExpired
    │   └── ClickLimitReached
    ├── PayloadTooLarge           413  exit 2
    ├── RateLimited               429  exit 1   a client spent its rate limit; says when to retry
    ├── ListenError               500  exit 3   the port cannot be bound
    ├── EventQueueError           503  exit 3   a click event could not be queued (disk full...)
    ├── RedisUnavailable          503  exit 3
    ├── ClusterError              500  exit 1   a cluster start, reload, restart or scale failed
    ├── AlreadyRunning            500  exit 1   a master already runs for this data dir
    ├── NotRunning                500  exit 3   no master runs for this data dir
    └── CommandFailed             500  exit 1   the master refused or did not answer a command
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PROBLEM_TYPE_PREFIX = "urn:boltlink:problem:"
INTERNAL_ERROR_EXIT = 70  # EX_SOFTWARE: a bug, said in one line by the CLI and the master alike


@dataclass(frozen=True)
class FieldError:
    """One invalid input field: its name (dotted for nested values) and why."""

    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class BoltlinkError(Exception):
    """Base of every deliberate boltlink error."""

    status: int = 500
    title: str = "Internal Server Error"
    problem: str = "internal"
    exit_code: int = 1

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title

    @property
    def problem_type(self) -> str:
        return PROBLEM_TYPE_PREFIX + self.problem

    def extensions(self) -> dict[str, Any]:
        """Extra members of the problem document (RFC 9457 section 3.2)."""
        return {}

    def headers(self) -> dict[str, str]:
        """HTTP headers the error response must carry besides the problem document."""
        return {}

    def problem_document(self) -> dict[str, Any]:
        return {"type": self.problem_type, "title": self.title, "status": self.status,
                "detail": self.detail, **self.extensions()}


class ConfigError(BoltlinkError):
    title = "Configuration Error"
    problem = "config"
    exit_code = 2


class StoreError(BoltlinkError):
    title = "Storage Error"
    problem = "store"


class StoreUnavailable(StoreError):
    status = 503
    title = "Service Unavailable"
    problem = "store-unavailable"
    exit_code = 3


class MigrationError(StoreError):
    title = "Migration Failed"
    problem = "migration"
    exit_code = 3


class InvalidInput(BoltlinkError):
    status = 422
    title = "Invalid Input"
    problem = "invalid-input"
    exit_code = 2

    def __init__(self, errors: list[FieldError] | FieldError, detail: str | None = None) -> None:
        self.errors = [errors] if isinstance(errors, FieldError) else list(errors)
        if detail is None:
            detail = "; ".join(f"{e.field}: {e.message}" for e in self.errors)
        super().__init__(detail)

    @classmethod
    def field(cls, field: str, message: str) -> InvalidInput:
        return cls(FieldError(field, message))

    def extensions(self) -> dict[str, Any]:
        return {"errors": [e.as_dict() for e in self.errors]}


class Unauthorized(BoltlinkError):
    status = 401
    title = "Unauthorized"
    problem = "unauthorized"
    exit_code = 2

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="boltlink"'}  # RFC 9110: a 401 names its scheme


class Forbidden(BoltlinkError):
    status = 403
    title = "Forbidden"
    problem = "forbidden"
    exit_code = 2


class NotFound(BoltlinkError):
    status = 404
    title = "Not Found"
    problem = "not-found"
    exit_code = 4


class LinkNotFound(NotFound):
    problem = "link-not-found"

    def __init__(self, slug: str) -> None:
        super().__init__(f"No link with slug '{slug}'.")
        self.slug = slug


class Conflict(BoltlinkError):
    status = 409
    title = "Conflict"
    problem = "conflict"
    exit_code = 5


class SlugTaken(Conflict):
    problem = "slug-taken"

    def __init__(self, slug: str) -> None:
        super().__init__(f"The slug '{slug}' is already taken.")
        self.slug = slug

    def extensions(self) -> dict[str, Any]:
        return {"errors": [FieldError("slug", "already taken").as_dict()]}


class DeleteProtected(Conflict):
    """The API refuses to delete a link with more than delete_protection_clicks clicks unless forced."""

    problem = "delete-protected"

    def __init__(self, slug: str, clicks: int, threshold: int) -> None:
        super().__init__(f"The link '{slug}' has {clicks} clicks, more than {threshold}: "
                         "delete it with ?force=true if you mean it.")
        self.clicks = clicks
        self.threshold = threshold

    def extensions(self) -> dict[str, Any]:
        return {"clicks": self.clicks, "threshold": self.threshold, "force": "?force=true"}


class Gone(BoltlinkError):
    status = 410
    title = "Gone"
    problem = "gone"
    exit_code = 4


class LinkExpired(Gone):
    problem = "link-expired"

    def __init__(self, slug: str) -> None:
        super().__init__(f"The link '{slug}' has expired.")


class ClickLimitReached(Gone):
    problem = "click-limit-reached"

    def __init__(self, slug: str) -> None:
        super().__init__(f"The link '{slug}' has reached its maximum number of clicks.")


class PayloadTooLarge(BoltlinkError):
    status = 413
    title = "Content Too Large"
    problem = "payload-too-large"
    exit_code = 2


class RateLimited(BoltlinkError):
    status = 429
    title = "Too Many Requests"
    problem = "rate-limited"

    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        self.retry_after = max(1, retry_after)  # whole seconds, as Retry-After takes them
        super().__init__(detail or f"Too many requests: retry in {self.retry_after} s.")

    def extensions(self) -> dict[str, Any]:
        return {"retry_after": self.retry_after}

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class ListenError(BoltlinkError):
    title = "Cannot Listen"
    problem = "listen"
    exit_code = 3


class RedisUnavailable(BoltlinkError):
    status = 503
    title = "Service Unavailable"
    problem = "redis-unavailable"
    exit_code = 3


class EventQueueError(BoltlinkError):
    """An event could not be queued (disk full, read-only data directory...)."""

    status = 503
    title = "Click Not Recorded"
    problem = "event-queue"
    exit_code = 3


class ClusterError(BoltlinkError):
    title = "Cluster Operation Failed"
    problem = "cluster"
    exit_code = 1


class MasterUnavailable(ClusterError):
    """A worker's question to its cluster master (e.g. for /metrics) got no answer."""

    status = 503
    title = "Service Unavailable"
    problem = "master-unavailable"


class AlreadyRunning(BoltlinkError):
    title = "Already Running"
    problem = "already-running"
    exit_code = 1


class NotRunning(BoltlinkError):
    title = "Not Running"
    problem = "not-running"
    exit_code = 3


class CommandFailed(BoltlinkError):
    title = "Command Failed"
    problem = "command-failed"
    exit_code = 1
