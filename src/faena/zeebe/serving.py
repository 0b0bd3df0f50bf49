"""The gRPC server of ``faena server --zeebe-port``: TLS optional, bearer tokens, backpressure.

* Auth is the server's: with an admin token (``--token``, ``FAENA_ADMIN_TOKEN``) configured,
  every call needs the metadata ``authorization: Bearer <token>`` (what OAuth-style call
  credentials send), compared in constant time; else ``UNAUTHENTICATED``. A read-only token
  is refused (``PERMISSION_DENIED``): job workers write.
* Bytes that are not the method's request message: ``INVALID_ARGUMENT`` naming the method
  (grpc's own answer would be ``INTERNAL``).
* Backpressure: at most ``max_calls`` calls run at once (a waiting long poll is one); a call
  beyond that is answered ``RESOURCE_EXHAUSTED`` at once, as Zeebe's gateway does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc

from faena.brokers.protocol import Broker
from faena.core import payload
from faena.web.guard import Access, Role
from faena.zeebe.gateway import ZeebeGateway
from faena.zeebe.proto import add_servicer

_log = logging.getLogger("faena.zeebe")
DEFAULT_MAX_CALLS = 64
#: the largest message taken (Zeebe's gateway default is 4 MiB)
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


class _Auth(grpc.ServerInterceptor):
    def __init__(self, access: Access) -> None:
        self.access = access

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        header = ""
        for key, value in details.invocation_metadata or ():
            if key.lower() == "authorization":
                header = value if isinstance(value, str) else value.decode("latin-1")
        role = self.access.role(header.encode("latin-1", "replace"))
        if role is Role.ADMIN:
            return continuation(details)
        call = str(details.method).rpartition("/")[2]
        if role is Role.READ:
            _log.info(
                f"zeebe {call} refused: a read-only token",
                extra={"event": "zeebe.refused", "call": call, "status": "PERMISSION_DENIED"},
            )
            return _deny(grpc.StatusCode.PERMISSION_DENIED, "a read-only token cannot work jobs")
        _log.info(
            f"zeebe {call} refused: no admin token",
            extra={"event": "zeebe.refused", "call": call, "status": "UNAUTHENTICATED"},
        )
        return _deny(
            grpc.StatusCode.UNAUTHENTICATED,
            "send the metadata 'authorization: Bearer <token>' with the admin token the "
            "server was started with (FAENA_TOKEN or FAENA_ADMIN_TOKEN)",
        )


class _Undecodable:
    """What the request deserializer gives for bytes that are not the method's message."""

    def __init__(self, method: str, size: int, error: Exception) -> None:
        self.message = (
            f"the request to {method} is not a valid protobuf message ({size} bytes: "
            f"{error or type(error).__name__}); send the method's request message, e.g. "
            f"with a Zeebe client"
        )


class _Decoding(grpc.ServerInterceptor):
    """Bytes that do not decode as the method's request are ``INVALID_ARGUMENT`` with a message
    (grpc's own answer is ``INTERNAL``, "Exception deserializing request!")."""

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        decode = getattr(handler, "request_deserializer", None)
        if handler is None or decode is None:
            return handler
        method = str(details.method).rpartition("/")[2]

        def lenient(data: bytes) -> Any:
            try:
                return decode(data)
            except Exception as exc:  # protobuf's DecodeError, or a RuntimeWarning-raised
                return _Undecodable(method, len(data), exc)

        def guarded(behavior: Callable[..., Any]) -> Callable[..., Any]:
            def call(request: Any, context: grpc.ServicerContext) -> Any:
                if isinstance(request, _Undecodable):
                    _log.info(
                        f"zeebe {method} refused: undecodable request",
                        extra={
                            "event": "zeebe.refused",
                            "call": method,
                            "status": "INVALID_ARGUMENT",
                        },
                    )
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
                return behavior(request, context)

            return call

        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                guarded(handler.unary_unary), lenient, handler.response_serializer
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                guarded(handler.unary_stream), lenient, handler.response_serializer
            )
        return handler  # every gateway call is unary-request


def _deny(code: grpc.StatusCode, message: str) -> Any:
    def refuse(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, message)

    # every gateway call is unary-request; the response kind does not matter to an abort
    return grpc.unary_unary_rpc_method_handler(refuse)


class ZeebeServer:
    """A gRPC server with the gateway, on its own threads beside the HTTP server."""

    def __init__(
        self,
        broker: Broker,
        *,
        host: str,
        port: int,
        access: Access | None = None,
        cert: str | None = None,
        key: str | None = None,
        max_calls: int = DEFAULT_MAX_CALLS,
        max_payload_bytes: int = payload.DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        self.gateway = ZeebeGateway(
            broker, host=host, port=port, max_payload_bytes=max_payload_bytes
        )
        interceptors: list[grpc.ServerInterceptor] = (
            [_Auth(access)] if access is not None and access.configured else []
        )
        interceptors.append(_Decoding())
        self._server = grpc.server(
            ThreadPoolExecutor(max_workers=max_calls, thread_name_prefix="zeebe"),
            interceptors=interceptors,
            maximum_concurrent_rpcs=max_calls,
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),
            ],
        )
        add_servicer(self.gateway, self._server)
        address = f"{host}:{port}"
        if cert is not None and key is not None:
            creds = grpc.ssl_server_credentials([(Path(key).read_bytes(), Path(cert).read_bytes())])
            bound = self._server.add_secure_port(address, creds)
        else:
            bound = self._server.add_insecure_port(address)
        if bound == 0:
            raise OSError(f"cannot listen on {address} for the Zeebe gateway")
        self.port = self.gateway.port = bound  # port 0: the one the system chose
        self.tls = cert is not None
        self.host = host

    def start(self) -> None:
        self._server.start()
        _log.info(
            f"faena Zeebe gateway on {self.host}:{self.port}{' (TLS)' if self.tls else ''}",
            extra={
                "event": "zeebe.started",
                "host": self.host,
                "port": self.port,
                "tls": self.tls,
            },
        )

    def stop(self, grace: float) -> None:
        self.gateway.close()  # waiting long polls end now, with what they have
        self._server.stop(grace).wait()
        _log.info("faena Zeebe gateway stopped", extra={"event": "zeebe.stopped"})
