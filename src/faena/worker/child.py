"""``python -m faena.worker.child APP FD``: a job process of the ``process`` executor."""

from __future__ import annotations

import json
import os
import sys

from faena.worker.processes import CHILD_PATH_ENV, child_main

if __name__ == "__main__":
    for entry in reversed(json.loads(os.environ.get(CHILD_PATH_ENV, "[]"))):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    child_main(sys.argv[1], int(sys.argv[2]))
