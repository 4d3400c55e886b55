"""One error root for the whole platform.

Every layer raises subclasses of :class:`GedragError`; adapters wrap vendor exceptions at their
boundary (``raise StoreUnavailable(...) from exc``) so nothing vendor-specific leaks upward.
:class:`TransientError` is the branch that retries key on (Celery ``autoretry_for``); everything
else is permanent and fails the job with its cause. ``serving.errors`` maps classes to HTTP status
in one place; ``code`` is the stable machine-readable name put in the JSON body.
"""

from __future__ import annotations


class GedragError(Exception):
    """Root of every error the platform raises on purpose."""

    code = "error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class TransientError(GedragError):
    """A failure that may succeed when retried (a store or broker briefly unavailable)."""

    code = "unavailable"


class StoreUnavailable(TransientError):
    """A backing store (catalog, vector store, graph store, broker) cannot be reached."""

    code = "store_unavailable"


class NotFound(GedragError):
    """The object does not exist for this tenant (also used for other tenants' objects)."""

    code = "not_found"


class ModelNotFound(NotFound):
    """An OpenAI-compatible request names a model this key cannot use."""

    code = "model_not_found"


class Conflict(GedragError):
    """The request conflicts with the current state (duplicate name, object being deleted)."""

    code = "conflict"


class Held(Conflict):
    """A legal hold forbids the action (delete, purge, new version, move); names the hold."""

    code = "held"

    def __init__(self, detail: str, *, holds: list[str]) -> None:
        super().__init__(detail)
        self.holds = holds


class Unauthorized(GedragError):
    """Missing, unknown or revoked API key."""

    code = "unauthorized"


class Forbidden(GedragError):
    """A valid key that may not do this (e.g. promote a release)."""

    code = "forbidden"


class InvalidInput(GedragError):
    """The request is well-formed HTTP but its content is invalid (names the field)."""

    code = "invalid_input"

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.field = field


class EmptyUpload(InvalidInput):
    """An uploaded file has no bytes."""

    code = "empty_file"


class PayloadTooLarge(GedragError):
    """An upload is larger than the configured limit."""

    code = "payload_too_large"


class QuotaExceeded(GedragError):
    """A tenant used up a quota of the rolling 24 h window; ``retry_after_s`` says when
    enough of it frees up."""

    code = "quota_exceeded"

    def __init__(self, detail: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class Interrupted(GedragError):
    """A step stopped because its process is shutting down: the job is requeued, not failed."""

    code = "interrupted"


class UnsupportedMediaType(GedragError):
    """The content of an upload is not a supported document type."""

    code = "unsupported_media_type"


class IngestionError(GedragError):
    """A document cannot be ingested (corrupt, encrypted, no text, too large once parsed)."""

    code = "ingestion_failed"


class ConfigurationError(GedragError):
    """Settings are inconsistent or unsafe for the chosen environment."""

    code = "configuration_error"
