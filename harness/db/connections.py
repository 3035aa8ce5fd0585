"""The one database seam: connections, pools, scratch databases, named SQL.

Everything else receives a connection or a pool from here; nothing else calls
``psycopg.connect``. Driver errors that mean "could not reach the database" become
:class:`~harness.errors.ConnectionFailed` here and nowhere else.

Secrets: :func:`redact` masks the password of a DSN whole, whatever its form (URL,
key=value with quotes and escapes), by parsing it as libpq does; every password seen
here, and ``PGPASSWORD``, is remembered so that :func:`scrub` can mask it in any text
(messages, logs, reports) where it turns up anyway.

Scratch databases: every database :func:`create_database` makes is remembered until
:func:`drop_database` drops it, so that an interrupted command can drop what it made
(:func:`created_databases`).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from harness.db.queries import scalar
from harness.errors import ConnectionFailed, UsageError

CONNECT_TIMEOUT = 10


MASK = "***"
# Passwords seen in a DSN, masked by scrub() wherever they appear.
_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()


def remember_secret(value: str | None) -> None:
    """Mask ``value`` in every message :func:`scrub` cleans from now on."""
    if value and len(value) >= 3 and value != MASK:
        with _SECRETS_LOCK:
            _SECRETS.add(value)


def scrub(text: str) -> str:
    """``text`` with every known password (and ``PGPASSWORD``) masked."""
    with _SECRETS_LOCK:
        known = sorted(_SECRETS, key=len, reverse=True)
    env_password = os.environ.get("PGPASSWORD")
    if env_password and len(env_password) >= 3:
        known.append(env_password)
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def check_dsn(dsn: str) -> dict[str, Any]:
    """Parse a DSN (URL or key=value); one clear error when it is not one."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        reason = " ".join(str(exc).split())
        if _may_hold_password(dsn):
            # libpq quotes the text it choked on, which may be part of the password.
            reason = re.sub(r'"[^"]*"', f'"{MASK}"', reason)
        raise UsageError(f"not a valid DSN {redact(dsn)!r}: {reason}") from exc
    if params.get("password") is not None:
        remember_secret(str(params["password"]))
    return params


def _may_hold_password(dsn: str) -> bool:
    return "password" in dsn.lower() or bool(re.search(r"://[^/@]*:[^/]*@", dsn))


def redact(dsn: str) -> str:
    """The DSN with its password masked whole, for messages and reports.

    A URL keeps its form (the password of its user part and a ``password`` parameter
    masked); a key=value DSN is parsed as libpq parses it (quotes, escaped quotes) and
    written back with the password masked. Text that is not a valid DSN is masked from
    the first sign of a password to its end rather than risk showing part of one."""
    if re.match(r"^\s*postgres(ql)?://", dsn, re.IGNORECASE):
        return _redact_url(dsn)
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return _redact_unparsable(dsn)
    if "password" not in params:
        return dsn
    remember_secret(str(params["password"]))
    return " ".join(
        f"{k}={MASK if k == 'password' else _quoted(str(v))}" for k, v in params.items()
    )


def _quoted(value: str) -> str:
    """A key=value DSN value, quoted when it must be (as libpq reads it)."""
    if value and not re.search(r"[\s'\\]", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _redact_url(url: str) -> str:
    try:
        parts = urlsplit(url.strip())
        userinfo, at, hostinfo = parts.netloc.rpartition("@")
    except ValueError:
        return _redact_unparsable(url)
    netloc = parts.netloc
    if at and ":" in userinfo:
        user, _, password = userinfo.partition(":")
        remember_secret(password)
        remember_secret(unquote(password))
        netloc = f"{user}:{MASK}@{hostinfo}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k == "password" for k, _ in pairs):
            for k, v in pairs:
                if k == "password":
                    remember_secret(v)
                    remember_secret(unquote(v))
            query = urlencode(
                [(k, MASK if k == "password" else v) for k, v in pairs], safe="*", quote_via=quote
            )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _redact_unparsable(text: str) -> str:
    text = re.sub(r"(://[^/@]*?:)[^/]*@", rf"\1{MASK}@", text)
    match = re.search(r"password", text, re.IGNORECASE)
    if match:
        text = text[: match.end()] + f"={MASK}"
    return text


def dsn_with_db(dsn: str, dbname: str) -> str:
    params = check_dsn(dsn)
    params["dbname"] = dbname
    return make_conninfo(**params)


def dbname_of(dsn: str) -> str:
    return check_dsn(dsn).get("dbname") or check_dsn(dsn).get("user") or "postgres"


def connect(dsn: str, *, autocommit: bool = True, **kwargs: Any) -> psycopg.Connection:
    """A connection, or ConnectionFailed with the server's reason in one line."""
    check_dsn(dsn)
    kwargs.setdefault("connect_timeout", CONNECT_TIMEOUT)
    try:
        return psycopg.connect(dsn, autocommit=autocommit, **kwargs)
    except psycopg.OperationalError as exc:
        reason = " ".join(str(exc).split())
        raise ConnectionFailed(f"cannot connect to {redact(dsn)}: {reason}") from exc


def pool(dsn: str, *, min_size: int = 1, max_size: int = 10, **kwargs: Any) -> ConnectionPool:
    """An open pool; connection failures surface as ConnectionFailed at first use."""
    check_dsn(dsn)
    p = ConnectionPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        open=False,
        kwargs={"autocommit": True, **kwargs},
        name="harness",
    )
    try:
        p.open(wait=True, timeout=CONNECT_TIMEOUT)
    except PoolTimeout as exc:
        p.close()
        with connect(dsn):  # raises ConnectionFailed with the real reason
            pass
        raise ConnectionFailed(f"cannot open a pool on {redact(dsn)}") from exc
    return p


# -- scratch databases -----------------------------------------------------------------


def scratch_name(prefix: str = "harness") -> str:
    return f"{prefix}_{secrets.token_hex(4)}"


# Databases this process created and has not dropped: (admin DSN, name) in creation
# order. Registered before CREATE DATABASE is sent, so that one being created while a
# command is interrupted is dropped too.
_CREATED: dict[tuple[str, str], None] = {}
_CREATED_LOCK = threading.Lock()


def created_databases() -> list[tuple[str, str]]:
    """(admin DSN, name) of every database this process created and has not dropped."""
    with _CREATED_LOCK:
        return list(_CREATED)


def create_database(admin_dsn: str, name: str, template: str | None = None) -> str:
    """CREATE DATABASE name [TEMPLATE t]; returns the new database's DSN."""
    key = (admin_dsn, name)
    with _CREATED_LOCK:
        _CREATED[key] = None
    try:
        with connect(admin_dsn) as conn:
            query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
            if template:
                query = sql.SQL("{} TEMPLATE {}").format(query, sql.Identifier(template))
            conn.execute(query)
    except psycopg.errors.DuplicateDatabase:
        with _CREATED_LOCK:
            _CREATED.pop(key, None)  # not ours
        raise
    return dsn_with_db(admin_dsn, name)


def drop_database(admin_dsn: str, name: str) -> None:
    with connect(admin_dsn) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
    with _CREATED_LOCK:
        _CREATED.pop((admin_dsn, name), None)


def drop_created(since: list[tuple[str, str]] | None = None) -> list[str]:
    """Drop every database this process created (only those not in ``since``, a
    :func:`created_databases` list taken earlier); returns their names. A database that
    cannot be dropped is left registered and does not stop the others."""
    before = set(since or ())
    dropped = []
    for admin_dsn, name in reversed(created_databases()):
        if (admin_dsn, name) in before:
            continue
        with contextlib.suppress(psycopg.Error, ConnectionFailed, UsageError):
            drop_database(admin_dsn, name)
            dropped.append(name)
    return dropped


@contextlib.contextmanager
def scratch_database(
    admin_dsn: str, *, prefix: str = "harness", template: str | None = None, keep: bool = False
) -> Iterator[str]:
    """A new database on the server for the block, dropped afterwards unless ``keep``."""
    name = scratch_name(prefix)
    dsn = create_database(admin_dsn, name, template)
    try:
        yield dsn
    finally:
        if not keep:
            drop_database(admin_dsn, name)


def server_version(dsn: str) -> str:
    with connect(dsn) as conn:
        return str(scalar(conn, "SHOW server_version"))
