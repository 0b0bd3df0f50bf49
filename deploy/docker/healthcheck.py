#!/usr/bin/env python3
"""The image's HEALTHCHECK: GET the /healthz of this container's listener, exit 0 on 200.

One image runs every role, so the URL is chosen from the environment the role is run with:
FAENA_HEALTHCHECK_URL if set (e.g. http://127.0.0.1:9808/metrics for the Celery exporter,
which has no /healthz); else a worker's FAENA_METRICS_PORT when it is not 0; else
FAENA_PORT (faena server, faena up) or 8080. Standard library only: it runs in the image.
"""

from __future__ import annotations

import os
import sys
import urllib.request


def url() -> str:
    explicit = os.environ.get("FAENA_HEALTHCHECK_URL")
    if explicit:
        return explicit
    metrics = os.environ.get("FAENA_METRICS_PORT", "0")
    port = metrics if metrics not in ("", "0") else os.environ.get("FAENA_PORT", "8080")
    return f"http://127.0.0.1:{port}/healthz"


def main() -> int:
    target = url()
    try:
        with urllib.request.urlopen(target, timeout=2.5) as resp:
            return 0 if resp.status == 200 else 1
    except OSError as exc:
        print(f"faena healthcheck: {target}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
