"""Errors of the Camunda REST surface, carrying the status and the body Camunda would send."""

from __future__ import annotations

from typing import Any

from faena.errors import FaenaError

#: the longest ``errorMessage`` Camunda keeps (its column's width); both sides cut to it
ERROR_MESSAGE_LIMIT = 666


class RestError(FaenaError):
    """An answer other than success: ``status`` and Camunda's ``{"type", "message", "code"}``."""

    def __init__(self, status: int, message: str, type_: str = "RestException") -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"type": self.type, "message": self.message, "code": None}


def bad_request(message: str, type_: str = "InvalidRequestException") -> RestError:
    return RestError(400, message, type_)


def not_found(task_id: str) -> RestError:
    return RestError(404, f"External task with id {task_id} does not exist")


def shown_int(value: int) -> str:
    """An integer for a message: a huge one (up to Python's 4300 digits) is cut."""
    text = str(value)
    return text if len(text) <= 40 else f"{text[:20]}... ({len(text)} digits)"
