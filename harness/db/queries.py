"""Named SQL: the ``-- name: xyz`` blocks of ``harness/sql/<module>.sql``.

Every statement the Python code runs lives in those files; a module asks for its block by
name. Identifiers that vary go through ``psycopg.sql.Identifier``, never text.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any

import psycopg
from psycopg.rows import dict_row


@cache
def queries(module: str) -> dict[str, str]:
    """The ``-- name: xyz`` blocks of ``harness/sql/<module>.sql``."""
    text = resources.files("harness.sql").joinpath(f"{module}.sql").read_text()
    blocks: dict[str, str] = {}
    name = None
    for line in text.splitlines():
        match = re.match(r"--\s*name:\s*([\w-]+)", line)
        if match:
            name = match.group(1)
            blocks[name] = ""
        elif name is not None:
            blocks[name] += line + "\n"
    return {k: v.strip() for k, v in blocks.items()}


def query(module: str, name: str) -> str:
    return queries(module)[name]


def scalar(
    conn: psycopg.Connection[Any] | psycopg.Cursor[Any], statement: str, params: Any = None
) -> Any:
    """The first column of the first row a statement returns (it must return one)."""
    row = conn.execute(statement, params).fetchone()
    if row is None:
        raise LookupError(f"no row from: {' '.join(statement.split())[:80]}")
    return row[0]


def fetch_all(
    conn: psycopg.Connection[Any], module: str, name: str, params: Any = None
) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query(module, name), params)
        return cur.fetchall()
