"""The REST calls our SDK makes to a Camunda 7 engine (or to ``faena server``), over httpx."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

DEFAULT_ENGINE = "default"


class EngineError(Exception):
    """A non-2xx answer: the HTTP status and Camunda's ``type``/``message``/``code``."""

    def __init__(self, status: int, type_: str | None, message: str, code: int | None) -> None:
        super().__init__(f"{status} {type_ or 'error'}: {message}")
        self.status = status
        self.type = type_
        self.message = message
        self.code = code

    @property
    def lock_lost(self) -> bool:
        """400 (another worker holds it, or the lock expired) or 404 (the task is gone)."""
        return self.status in (400, 404)

    @property
    def transient(self) -> bool:
        """Worth retrying: optimistic locking (code 1), a 5xx, or the engine's long-poll queue
        being full."""
        return self.status >= 500 or self.code == 1


def engine_root(base_url: str, engine: str = DEFAULT_ENGINE) -> str:
    """``http://camunda:8080`` → ``http://camunda:8080/engine-rest``; a URL with a path is kept
    as the engine-rest root. A named engine adds ``/engine/{name}``."""
    base = base_url.rstrip("/")
    if urlsplit(base).path in ("", "/"):
        base += "/engine-rest"
    if engine != DEFAULT_ENGINE:
        base += f"/engine/{engine}"
    return base


def auth_of(auth: Any) -> httpx.Auth | None:
    """``(user, password)`` for basic auth, a string for a bearer token, or an httpx.Auth."""
    if auth is None or isinstance(auth, httpx.Auth):
        return auth
    if isinstance(auth, tuple) and len(auth) == 2:
        return httpx.BasicAuth(str(auth[0]), str(auth[1]))
    if isinstance(auth, str):
        return _Bearer(auth)
    raise TypeError(
        f"auth must be (user, password), a bearer token string or an httpx.Auth, "
        f"got {type(auth).__name__}"
    )


class _Bearer(httpx.Auth):
    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers["Authorization"] = self._header
        yield request


class EngineClient:
    """One method per endpoint. ``fetch_and_lock`` uses its own connection (a long poll);
    the task actions share another, so a pending poll never blocks a complete."""

    def __init__(
        self, root: str, *, auth: Any = None, timeout: float = 30.0, verify: bool = True
    ) -> None:
        self.root = root
        self._auth = auth_of(auth)
        self._actions = httpx.Client(auth=self._auth, timeout=timeout, verify=verify)
        self._poll = httpx.Client(auth=self._auth, timeout=timeout, verify=verify)

    def close(self) -> None:
        self._actions.close()
        self._poll.close()

    def _post(
        self, client: httpx.Client, path: str, body: Any, timeout: httpx.Timeout | None = None
    ) -> httpx.Response:
        kwargs: dict[str, Any] = {}
        if timeout is not None:
            kwargs["timeout"] = timeout
        if body is None:
            response = client.post(self.root + path, **kwargs)
        else:
            response = client.post(self.root + path, json=body, **kwargs)
        _raise_for(response)
        return response

    def fetch_and_lock(self, body: Mapping[str, Any], read_timeout: float) -> list[dict[str, Any]]:
        timeout = httpx.Timeout(10.0, read=read_timeout)
        response = self._post(self._poll, "/external-task/fetchAndLock", dict(body), timeout)
        tasks = response.json()
        if not isinstance(tasks, list):
            raise EngineError(response.status_code, None, f"fetchAndLock answered {tasks!r}", None)
        return tasks

    def complete(self, task_id: str, worker: str, variables: Mapping[str, Any]) -> None:
        self._post(
            self._actions,
            f"/external-task/{task_id}/complete",
            {"workerId": worker, "variables": dict(variables)},
        )

    def failure(
        self,
        task_id: str,
        worker: str,
        message: str,
        details: str,
        retries: int,
        retry_timeout_ms: int,
    ) -> None:
        self._post(
            self._actions,
            f"/external-task/{task_id}/failure",
            {
                "workerId": worker,
                "errorMessage": message,
                "errorDetails": details,
                "retries": retries,
                "retryTimeout": retry_timeout_ms,
            },
        )

    def bpmn_error(
        self,
        task_id: str,
        worker: str,
        code: str,
        message: str | None,
        variables: Mapping[str, Any],
    ) -> None:
        body: dict[str, Any] = {"workerId": worker, "errorCode": code, "variables": dict(variables)}
        if message is not None:
            body["errorMessage"] = message
        self._post(self._actions, f"/external-task/{task_id}/bpmnError", body)

    def extend_lock(self, task_id: str, worker: str, duration_ms: int) -> None:
        self._post(
            self._actions,
            f"/external-task/{task_id}/extendLock",
            {"workerId": worker, "newDuration": duration_ms},
        )

    def unlock(self, task_id: str) -> None:
        self._post(self._actions, f"/external-task/{task_id}/unlock", None)


def _raise_for(response: httpx.Response) -> None:
    if response.is_success:
        return
    type_: str | None = None
    message = response.text or response.reason_phrase
    code: int | None = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        type_ = body.get("type")
        message = str(body.get("message") or message)
        raw_code = body.get("code")
        code = raw_code if isinstance(raw_code, int) else None
    raise EngineError(response.status_code, type_, message, code)
