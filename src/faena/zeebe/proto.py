"""The generated gRPC code of Zeebe's published ``gateway.proto``, imported in one place.

pyzeebe (4.7) ships the stubs generated from Camunda's ``gateway.proto`` (package
``gateway_protocol``) in ``pyzeebe.proto``; the ``zeebe-grpc`` package carries the same, but
pins protobuf 4, which pyzeebe's protobuf 5+ cannot share a process with, and two copies of
``gateway_protocol`` cannot be loaded into one descriptor pool. So faena uses pyzeebe's.
"""

from __future__ import annotations

from typing import Any

from pyzeebe.proto import gateway_pb2 as _pb2
from pyzeebe.proto import gateway_pb2_grpc as _pb2_grpc

pb: Any = _pb2
GatewayServicer: Any = _pb2_grpc.GatewayServicer
add_servicer: Any = _pb2_grpc.add_GatewayServicer_to_server
