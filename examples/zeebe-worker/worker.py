"""A pyzeebe job worker taking faena jobs through faena's Zeebe gateway (docs/zeebe.md).

    faena server --zeebe-port 26500 &
    ZEEBE_ADDRESS=127.0.0.1:26500 python worker.py

Jobs of the queue ``process-order`` are its jobs; their keyword arguments its variables.
"""

from __future__ import annotations

import asyncio
import os

import grpc
from pyzeebe import ZeebeWorker, create_insecure_channel
from pyzeebe.errors import BusinessError

ADDRESS = os.environ.get("ZEEBE_ADDRESS", "127.0.0.1:26500")
TOKEN = os.environ.get("FAENA_TOKEN")  # the server's token, sent as an OAuth-style bearer


def channel() -> grpc.aio.Channel:
    if not TOKEN:
        return create_insecure_channel(grpc_address=ADDRESS)
    creds = grpc.composite_channel_credentials(
        grpc.local_channel_credentials(), grpc.access_token_call_credentials(TOKEN)
    )
    return grpc.aio.secure_channel(ADDRESS, creds)


async def main() -> None:
    worker = ZeebeWorker(channel(), name=os.environ.get("WORKER_NAME", "order-worker"))

    @worker.task(task_type="process-order", timeout_ms=30_000)
    async def process_order(orderId: str, amount: float) -> dict[str, object]:
        if amount < 0:
            raise BusinessError("NEGATIVE_AMOUNT")  # ThrowError: no retry
        return {"orderId": orderId, "processed": True}  # CompleteJob variables

    await worker.work()


if __name__ == "__main__":
    asyncio.run(main())
