"""security.*: who may call the money functions, what they run with, and which tables
row level security guards. Read from the catalog of a migrated clone, and where it
matters tried for real under SET ROLE."""

from __future__ import annotations

import psycopg
from psycopg import sql

from harness import db
from harness.proofs.verify.context import q
from harness.proofs.verify.registry import CheckFailed, CheckSkipped, check

API_ROLES = ("anon", "authenticated")


def _functions(conn) -> list[tuple]:
    rows = conn.execute(q("security", "functions")).fetchall()
    if not rows:
        raise CheckSkipped("the migrations define no function in the public schema")
    return rows


@check("security.execute-not-public")
def execute_not_public(ctx) -> str:
    """No function of the migrations' schema is executable by PUBLIC, anon or
    authenticated: per the ACL and has_function_privilege, and by actually calling each
    (with NULL arguments, rolled back) under SET ROLE and getting 'permission denied'."""
    with ctx.connect(ctx.new_database(audit=False)) as conn:
        funcs = _functions(conn)
        roles = [r[0] for r in conn.execute(q("security", "api-roles"))]
        grants = conn.execute(q("security", "execute-grantees")).fetchall()
        problems = sorted({f"{sig} executable by PUBLIC" for sig, public, _, _ in grants if public})
        problems += [f"{sig} executable by {role}" for sig, _, role, can in grants if can]
        tried = 0
        for oid, sig, _definer, _path, is_trigger, kind in funcs:
            if is_trigger or kind != "f":
                continue  # trigger functions and procedures cannot be called this way
            call = db.scalar(conn, q("security", "call-with-nulls"), (oid,))
            for role in roles:
                tried += 1
                conn.execute("BEGIN")
                try:
                    conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
                    conn.execute(call)
                    problems.append(f"{sig} ran under SET ROLE {role}")
                except psycopg.errors.InsufficientPrivilege as exc:
                    if "function" not in str(exc):  # denied a table, not the call
                        problems.append(
                            f"{sig} ran under SET ROLE {role} (stopped only "
                            f"by: {' '.join(str(exc).split())[:80]})"
                        )
                except psycopg.Error as exc:
                    problems.append(
                        f"{sig} under SET ROLE {role}: got past the privilege "
                        f"check ({type(exc).__name__})"
                    )
                finally:
                    conn.execute("ROLLBACK")
    if problems:
        raise CheckFailed("; ".join(dict.fromkeys(problems)))
    return (
        f"{len(funcs)} functions: EXECUTE granted to none of PUBLIC, "
        f"{', '.join(roles)}; {tried} calls under SET ROLE all denied"
    )


@check("security.search-path-pinned")
def search_path_pinned(ctx) -> str:
    """Every function of the migrations' schema runs with a pinned search_path
    (SET search_path in its definition), so no caller's path can redirect its tables."""
    with ctx.connect(ctx.new_database(audit=False)) as conn:
        funcs = _functions(conn)
    loose = [sig for _, sig, _, path, _, _ in funcs if not path]
    if loose:
        raise CheckFailed("no pinned search_path: " + ", ".join(loose))
    return f"{len(funcs)} functions, each with SET search_path"


@check("security.definer-has-search-path")
def definer_has_search_path(ctx) -> str:
    """No SECURITY DEFINER function lacks a pinned search_path (a definer function with
    the caller's path runs the caller's objects with the owner's rights)."""
    with ctx.connect(ctx.new_database(audit=False)) as conn:
        funcs = _functions(conn)
    definers = [(sig, path) for _, sig, definer, path, _, _ in funcs if definer]
    bad = [sig for sig, path in definers if not path]
    if bad:
        raise CheckFailed("SECURITY DEFINER without a pinned search_path: " + ", ".join(bad))
    if not definers:
        return f"no SECURITY DEFINER function among {len(funcs)}"
    return f"{len(definers)} SECURITY DEFINER functions, each with a pinned search_path"


@check("security.rls-enabled")
def rls_enabled(ctx) -> str:
    """Every table holding workspace data (a workspace_id or buyer_workspace_id column,
    and workspaces itself) has row level security enabled."""
    with ctx.connect(ctx.new_database(audit=False)) as conn:
        tables = conn.execute(q("security", "workspace-tables")).fetchall()
    if not tables:
        raise CheckSkipped("no table with a workspace_id column")
    off = [name for name, on in tables if not on]
    if off:
        raise CheckFailed("row level security disabled on: " + ", ".join(off))
    return f"row level security on all {len(tables)}: " + ", ".join(n for n, _ in tables)
