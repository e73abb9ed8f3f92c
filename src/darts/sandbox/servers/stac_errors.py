"""The one error type of the sandbox STAC API, turned into a JSON answer by the app."""

from __future__ import annotations


class StacApiError(Exception):
    """An answer with a 4xx/5xx status and a ``{"code", "description"}`` body.

    The body shape is the one stac-fastapi (and so CDSE) uses, so client code that
    reports server errors sees the same fields as in production.
    """

    def __init__(self, status: int, code: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.code = code
        self.description = description

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "description": self.description}


def bad_request(description: str, code: str = "BadRequest") -> StacApiError:
    return StacApiError(400, code, description)


def not_found(description: str) -> StacApiError:
    return StacApiError(404, "NotFoundError", description)
