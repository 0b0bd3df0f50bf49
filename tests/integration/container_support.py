"""Shared by the container tests (no tests here): podman as it runs on this machine kind, a
Debian base image built offline with debootstrap (cached between runs), and faena's image
built from deploy/docker/Dockerfile with the host's pip settings passed in.

podman here: root, ``--runtime runc --cgroup-manager=cgroupfs`` (crun refuses hybrid
cgroups), ``--network host``, explicit ulimits with a containers.conf that sets no default
ulimits (otherwise setrlimit fails). No registry is reachable, so the base comes from
debootstrap and ``podman import`` (docs/deploy.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from filelock import FileLock
from tests.conftest import need

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("FAENA_TEST_BASE_CACHE", "/var/tmp/faena-test-base"))
SUITE = "bookworm"
#: what the base needs: python3 with venv (as python:3.11-slim has); the Dockerfile adds tini
INCLUDE = ("python3", "python3-venv")
ULIMITS = ["--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]
IMAGE = "localhost/faena:test"
BUILD_STAGE = "localhost/faena-build-stage:test"
#: the pip settings the Dockerfile takes as build args (pip config key -> variable)
PIP_KEYS = {
    "index-url": "PIP_INDEX_URL",
    "extra-index-url": "PIP_EXTRA_INDEX_URL",
    "find-links": "PIP_FIND_LINKS",
    "cert": "PIP_CERT",
}


def containers_conf() -> Path:
    """A containers.conf with no default ulimits (CONTAINERS_CONF for every podman call)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    conf = CACHE / "containers.conf"
    if not conf.exists():
        conf.write_text("[containers]\ndefault_ulimits = []\n")
    return conf


def podman(
    *args: str, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONTAINERS_CONF": str(containers_conf())}
    cmd = ["podman", "--runtime", "runc", "--cgroup-manager=cgroupfs", *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done


def need_podman() -> None:
    """Skip (fail under CI=true) where podman cannot build and run containers."""
    missing = [t for t in ("podman", "runc", "debootstrap") if shutil.which(t) is None]
    need(
        not missing, f"{', '.join(missing)} not installed (apt-get install podman runc debootstrap)"
    )
    need(os.geteuid() == 0, "podman here runs as root (rootless needs subuids) and we are not root")


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (deb822 sources, else sources.list)."""
    deb822 = Path("/etc/apt/sources.list.d/debian.sources")
    if deb822.exists():
        for block in deb822.read_text().split("\n\n"):
            uris = re.search(r"^URIs:\s*(\S+)", block, re.M)
            if uris and "security" not in uris.group(1):
                return uris.group(1)
    listing = Path("/etc/apt/sources.list")
    if listing.exists():
        found = re.search(
            r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+" + SUITE + r"\s", listing.read_text(), re.M
        )
        if found:
            return found.group(1)
    return "http://deb.debian.org/debian"


def base_image() -> str:
    """A Debian bookworm image with python3 and venv, built once per machine: the debootstrap
    tree is kept as a tarball under CACHE, keyed by suite, mirror and packages."""
    mirror = debian_mirror()
    key = hashlib.sha256(json.dumps([SUITE, mirror, INCLUDE, "minbase", 1]).encode()).hexdigest()
    tag = f"localhost/faena-test-base:{key[:12]}"
    if podman("image", "exists", tag, check=False).returncode == 0:
        return tag
    tarball = CACHE / f"{key[:12]}.tar"
    if not tarball.exists():
        tree = CACHE / f"{key[:12]}.tree"
        shutil.rmtree(tree, ignore_errors=True)
        done = subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(INCLUDE)}", SUITE,
             str(tree), mirror],
            capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert done.returncode == 0, (
            f"debootstrap failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}"
        )
        partial = tarball.with_suffix(".partial")
        subprocess.run(
            ["tar", "-C", str(tree), "--exclude=./var/cache/apt/archives/*.deb",
             "--exclude=./var/lib/apt/lists/*", "-cf", str(partial), "."],
            check=True, timeout=300,
        )  # fmt: skip
        partial.rename(tarball)
        shutil.rmtree(tree, ignore_errors=True)
    podman("import", str(tarball), tag)
    return tag


def pip_build_settings() -> tuple[dict[str, str], list[str]]:
    """The host's pip index settings as build args, and the ``-v`` mounts their local paths
    need (file:// indexes, wheel folders, the CA bundle), read the way pip reads them:
    ``pip config list``, then PIP_* variables over it."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
    ).stdout
    found: dict[str, str] = {}
    for line in listed.splitlines():
        match = re.match(r"^[\w:.-]*?\.([\w-]+)='(.*)'$", line.strip())
        if match and match.group(1) in PIP_KEYS:
            found[PIP_KEYS[match.group(1)]] = match.group(2)
    for var in PIP_KEYS.values():
        if os.environ.get(var):
            found[var] = os.environ[var]
    mounts: list[str] = []
    for var, value in found.items():
        for item in value.split():
            path = urlparse(item).path if item.startswith("file:") else item
            if var.endswith("INDEX_URL"):
                path = os.path.dirname(path.rstrip("/"))  # pages link to ../files/...
            if path.startswith("/") and os.path.exists(path):
                spec = f"{path}:{path}:ro"
                if spec not in mounts:
                    mounts += ["-v", spec]
    return found, mounts


def _image_id(tag: str) -> str:
    return podman("image", "inspect", "--format", "{{.Id}}", tag, check=False).stdout.strip()


def build_image() -> tuple[str, float]:
    """Build deploy/docker/Dockerfile on the debootstrap base; the tag and the seconds it took
    (podman's layer cache makes a rebuild of an unchanged tree a few seconds). The build
    stage is tagged too (BUILD_STAGE), so that the images a changed tree leaves untagged,
    the final one and the stage's, are removed rather than piling up. One build at a time on
    this machine (a file lock): two test processes would debootstrap into one tree."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with FileLock(str(CACHE / "build.lock"), timeout=1800):
        return _build_image()


def _build_image() -> tuple[str, float]:
    base = base_image()
    probe = podman("run", "--rm", "--network", "host", *ULIMITS, base, "true", check=False)
    need(probe.returncode == 0, f"podman cannot run containers here: {probe.stderr.strip()[-500:]}")
    args, mounts = pip_build_settings()
    common = [
        "build", "--format", "docker", "--network", "host", *ULIMITS, *mounts,
        f"--build-arg=BASE={base}", *[f"--build-arg={k}={v}" for k, v in args.items()],
        "-f", str(ROOT / "deploy/docker/Dockerfile"),
    ]  # fmt: skip
    before = {tag: _image_id(tag) for tag in (BUILD_STAGE, IMAGE)}
    started = time.monotonic()
    podman(*common, "--target", "build", "-t", BUILD_STAGE, str(ROOT), timeout=1200)
    podman(*common, "-t", IMAGE, str(ROOT), timeout=1200)
    took = time.monotonic() - started
    for tag, old in before.items():
        if old and _image_id(tag) != old:  # untagged by this build: nothing else uses it
            podman("rmi", old, check=False)
    return IMAGE, took


def run_detached(name: str, image: str, *args: str, env: dict[str, str] | None = None,
                 volumes: tuple[str, ...] = ()) -> None:  # fmt: skip
    podman("rm", "-f", name, check=False)
    flags = [f"--env={k}={v}" for k, v in (env or {}).items()]
    for volume in volumes:
        flags += ["-v", volume]
    podman("run", "-d", "--name", name, "--network", "host", *ULIMITS, *flags, image, *args)


def remove(*names: str) -> None:
    for name in names:
        podman("rm", "-f", "-t", "0", name, check=False)


def wait_for(check: Callable[[], bool], timeout: float, what: str, logs_of: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    logs = podman("logs", logs_of, check=False) if logs_of else None
    tail = f"\nlogs of {logs_of}:\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}" if logs else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}{tail}")
