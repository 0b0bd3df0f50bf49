"""Broker URLs for PostgreSQL: what faena reads from them and what it hands to psycopg."""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from faena.errors import BrokerURLError

DEFAULT_SCHEMA = "faena"
DEFAULT_POOL_SIZE = 8
#: the query parameters that are faena's; every other one goes to libpq as is
FAENA_PARAMS = ("schema", "pool_size")
_SCHEMA = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,55}$")
#: first key of faena's advisory locks ("fa"); the second is derived from the schema
LOCK_CLASS_CLAIM = 0x6661
LOCK_CLASS_MIGRATE = 0x6662
#: fold_counts (migration 15): one fold of job_counts' gone shards at a time
LOCK_CLASS_FOLD = 0x6663


def mask(url: str) -> str:
    """The URL with its password replaced by ``***``, fit for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


@dataclass(frozen=True, slots=True)
class PgConfig:
    url: str  # as given
    conninfo: str  # for psycopg: faena's parameters removed
    schema: str
    pool_size: int

    @property
    def display_url(self) -> str:
        return mask(self.url)

    @property
    def quoted_schema(self) -> str:
        return f'"{self.schema}"'

    @property
    def channel(self) -> str:
        """The LISTEN/NOTIFY channel of this schema."""
        return f"faena_{self.schema}"

    @property
    def lock_key(self) -> int:
        """The second key of this schema's advisory locks (a signed 32-bit integer)."""
        value = zlib.crc32(self.schema.encode())
        return value - (1 << 32) if value >= (1 << 31) else value

    @classmethod
    def parse(cls, url: str) -> PgConfig:
        parts = urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres"):
            raise BrokerURLError(
                f"broker URL {mask(url)!r} is not a PostgreSQL URL; use "
                f"postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?schema=faena]"
            )
        params = parse_qsl(parts.query, keep_blank_values=True)
        ours = {k: v for k, v in params if k in FAENA_PARAMS}
        rest = [(k, v) for k, v in params if k not in FAENA_PARAMS]
        schema = ours.get("schema", DEFAULT_SCHEMA)
        if not _SCHEMA.match(schema):
            raise BrokerURLError(
                f"broker URL {mask(url)!r} names schema {schema!r}; a schema name must be "
                f"1-56 letters, digits or '_', not starting with a digit (e.g. ?schema=faena)"
            )
        size_text = ours.get("pool_size", str(DEFAULT_POOL_SIZE))
        if not size_text.isdigit() or int(size_text) < 1:
            raise BrokerURLError(
                f"broker URL {mask(url)!r} has pool_size={size_text!r}; "
                f"use a whole number of connections >= 1 (e.g. ?pool_size=8)"
            )
        conninfo = urlunsplit(parts._replace(scheme="postgresql", query=urlencode(rest)))
        return cls(url=url, conninfo=conninfo, schema=schema, pool_size=int(size_text))
