"""A real pyzeebe worker process against a live ``faena server --zeebe-port``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

#: the job type (a faena queue) the test workers take
TYPE = "zeebe-orders"

PYZEEBE_WORKER = r"""
import asyncio, json, os, time
import grpc
from pyzeebe import Job, JobController, ZeebeWorker, create_insecure_channel
from pyzeebe.errors import BusinessError

ADDRESS, NAME = os.environ["ZEEBE_ADDRESS"], os.environ["WORKER_NAME"]
HANDLED = os.environ.get("HANDLED_LOG")
BACKOFF = int(os.environ.get("BACKOFF_MS", "0"))


def record(job, what):
    if HANDLED:
        with open(HANDLED, "a") as f:
            f.write(f"{job.key} {job.variables.get('n')} {NAME} {what}\n")
            f.flush()
            os.fsync(f.fileno())


async def on_error(exc, job, controller):
    if isinstance(exc, BusinessError):
        await controller.set_error_status(f"rejected: {exc}", error_code=exc.error_code)
    else:
        await controller.set_failure_status(f"boom: {exc}", retry_back_off_ms=BACKOFF)


async def main():
    if os.environ.get("TOKEN"):  # TLS with CA, else plain TCP to this machine
        transport = (
            grpc.ssl_channel_credentials(open(os.environ["CA"], "rb").read())
            if os.environ.get("CA") else grpc.local_channel_credentials()
        )
        creds = grpc.composite_channel_credentials(
            transport, grpc.access_token_call_credentials(os.environ["TOKEN"])
        )
        channel = grpc.aio.secure_channel(ADDRESS, creds)
    else:
        channel = create_insecure_channel(grpc_address=ADDRESS)
    worker = ZeebeWorker(channel, name=NAME, exception_handler=on_error, poll_retry_delay=1)

    @worker.task(task_type=os.environ["TYPE"],
                 timeout_ms=int(os.environ.get("TIMEOUT_MS", "30000")),
                 max_running_jobs=int(os.environ.get("MAX_JOBS", "4")))
    async def handle(job: Job, mode: str = "ok", n: int = 0):
        record(job, "start")
        if mode == "fail":
            raise RuntimeError(f"cannot process {n}")
        if mode == "bpmn":
            raise BusinessError("NEG")
        if mode == "hang" and not os.environ.get("NO_HANG"):
            await asyncio.sleep(3600)
        if mode == "slow":
            await asyncio.sleep(0.3)
        record(job, "done")
        return {"doubled": n * 2, "by": NAME, "doc": {"items": [1, 2]}}

    await worker.work()


asyncio.run(main())
"""


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_pyzeebe(tmp: Path, address: str, name: str, **env: str) -> Worker:
    script = tmp / "pyzeebe_worker.py"
    script.write_text(PYZEEBE_WORKER)
    full = {**os.environ, "ZEEBE_ADDRESS": address, "WORKER_NAME": name, "TYPE": TYPE, **env}
    log = tmp / f"worker-{name}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, str(script)], cwd=tmp, env=full, stdout=out, stderr=subprocess.STDOUT
        )
    return Worker(proc, log)
