"""The serving layer's exception tree (under bastion_errors.BastionError).

    ServingError
    ├── ConnectError          the server could not be reached (down, wrong URL, refused)
    ├── TimeoutError          the server took longer than the configured timeout
    ├── ServerError           the server answered 5xx (or 429) after all retries
    ├── BadRequestError       the server rejected the request (4xx)
    │   └── ContextLengthError    the prompt does not fit the model's context
    ├── ResponseError         the server answered something we could not understand
    ├── CapabilityError       the server's model cannot do what the request needs (e.g. images)
    ├── ImageError            an image Bastion was given cannot be sent (type, size); also an InputError
    └── LocalServerError      the local llama-server could not be installed, started or stopped

Every message says what to do next: errors cross into the CLI as they are.
"""

from __future__ import annotations

from bastion_errors import BastionError, InputError


class ServingError(BastionError):
    """Base class of every error raised by `serving`."""


class ConnectError(ServingError):
    pass


class TimeoutError(ServingError):
    pass


class ServerError(ServingError):
    def __init__(self, message: str, *, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class BadRequestError(ServingError):
    def __init__(self, message: str, *, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class ContextLengthError(BadRequestError):
    pass


class ResponseError(ServingError):
    pass


class LocalServerError(ServingError):
    pass


class CapabilityError(ServingError):
    """The server's model cannot do what the request needs (e.g. read images)."""


class ImageError(ServingError, InputError):
    """An image the caller gave cannot be sent: a type the protocol does not carry, or too large."""
