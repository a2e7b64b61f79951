"""The error tree. Every error carries the one sentence a user sees.

    ImagineError                    base: .user_message, .refunded
    ├── RequestError                bad input (field, value, what is allowed)
    ├── SettingError                an unknown setting or a bad /settings command
    ├── PolicyError                 refused by the content policy (costs nothing)
    ├── NoBackendConfigured         nothing can serve the model: says what to set
    ├── QuotaError
    │   ├── InsufficientCredits     not enough credits left this period
    │   ├── UserBlocked             an admin blocked this user
    │   ├── QueueFull               the user already has too many queued jobs
    │   └── BudgetExhausted         the team's money budget for the period is used up
    ├── NotAllowed                  not the owner / not an admin
    ├── ShuttingDown                the bot is stopping: try again shortly (costs nothing)
    ├── JobNotFound                 unknown or deleted job id
    └── BackendError                the image service failed
        ├── BackendRejected         400 / 404: the request itself is wrong (not retried)
        ├── BackendUnavailable      401 / 403 / 406: an admin must act (not retried)
        └── BackendTransient        retried with backoff
            ├── RateLimited         429
            ├── ServerError         500 / 502 / 503 / 504
            ├── BackendTimeout      no answer in time
            └── BadResponse         an answer that is not an image
"""

from __future__ import annotations


class ImagineError(Exception):
    """Base of every error the bot shows to a user."""

    default_message = "Something went wrong."

    def __init__(self, user_message: str | None = None, *, refunded: bool | None = None) -> None:
        self.user_message = user_message or self.default_message
        self.refunded = refunded
        super().__init__(self.user_message)

    def sentence(self) -> str:
        """The user's sentence, with the refund stated when it is known."""
        if self.refunded is True:
            return f"{self.user_message} Your credits were refunded."
        return self.user_message


class RequestError(ImagineError):
    """A request that fails validation: names the field, the value and what is allowed."""

    def __init__(self, field: str, value: object, allowed: str, *, shown: str | None = None) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        self.shown = shown if shown is not None else _short_repr(value)
        super().__init__(f"{field} {self.shown} is not allowed: {allowed}.")


class SettingError(ImagineError):
    """A /settings command that cannot be carried out (nothing is stored or charged)."""


class PolicyError(ImagineError):
    default_message = "That prompt is not allowed here. Nothing was charged."


class NoBackendConfigured(ImagineError):
    default_message = (
        "No image service is configured: an admin must set SEGMIND_API_KEY or a worker URL "
        "([worker] url). Nothing was charged."
    )


class QuotaError(ImagineError):
    pass


class InsufficientCredits(QuotaError):
    pass


class UserBlocked(QuotaError):
    default_message = "You are blocked from generating images here; ask an admin."


class QueueFull(QuotaError):
    pass


class BudgetExhausted(QuotaError):
    default_message = "The team's image budget is used up for now; ask an admin. Nothing was charged."


class NotAllowed(ImagineError):
    default_message = "Only the owner of that image or an admin can do that."


class ShuttingDown(ImagineError):
    default_message = ("The bot is restarting; please try again in a minute. "
                       "Nothing was charged.")


class NotCancellable(ImagineError):
    default_message = ("That job is already running or finished, so it cannot be cancelled "
                       "(a started generation cannot be recalled).")


class JobNotFound(ImagineError):
    default_message = "That image no longer exists (it was deleted or expired)."


class BackendError(ImagineError):
    default_message = "The image service failed."

    def __init__(
        self,
        user_message: str | None = None,
        *,
        status: int | None = None,
        detail: str = "",
        refunded: bool | None = None,
    ) -> None:
        self.status = status
        self.detail = detail  # for the log only; may hold the service's own words
        super().__init__(user_message, refunded=refunded)


class BackendRejected(BackendError):
    default_message = "The image service rejected the request; check the prompt and options."


class BackendUnavailable(BackendError):
    default_message = "The image service is unavailable right now; an admin has been alerted."


class BackendTransient(BackendError):
    default_message = "The image service is busy or failing; please try again in a minute."


class RateLimited(BackendTransient):
    def __init__(self, *args: object, retry_after_s: float | None = None, **kwargs: object) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]


class ServerError(BackendTransient):
    pass


class BackendTimeout(BackendTransient):
    default_message = "The image service took too long to answer; please try again."


class BadResponse(BackendTransient):
    default_message = "The image service sent back something that is not an image."


def _short_repr(value: object, limit: int = 40) -> str:
    """A printable, bounded rendering of a user's value for an error sentence."""
    try:
        text = repr(value) if isinstance(value, str) else str(value)
    except (ValueError, OverflowError):  # an int too long to print (over 4300 digits)
        text = "a number too long to show"
    except Exception:  # e.g. RecursionError from a list nested too deep: never fail here
        text = f"a {type(value).__name__} that cannot be shown"
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
