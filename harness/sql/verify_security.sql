-- Catalog queries of the security checks. "Our" functions are those of the public
-- schema that no extension owns.

-- name: functions
SELECT p.oid, p.oid::regprocedure::text AS signature, p.prosecdef AS security_definer,
       (SELECT string_agg(c, ', ') FROM unnest(p.proconfig) c
         WHERE c LIKE 'search_path=%%') AS search_path,
       p.prorettype = 'trigger'::regtype AS is_trigger,
       p.prokind
FROM pg_proc p
WHERE p.pronamespace = 'public'::regnamespace
  AND NOT EXISTS (SELECT FROM pg_depend d
                  WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                    AND d.deptype = 'e')
ORDER BY 2

-- name: execute-grantees
-- Who may execute each function: PUBLIC through the ACL (a NULL ACL means the default,
-- which grants EXECUTE to PUBLIC), and the API roles through has_function_privilege.
SELECT p.oid::regprocedure::text AS signature,
       (p.proacl IS NULL OR EXISTS (
          SELECT FROM aclexplode(p.proacl) a
          WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')) AS public,
       r.rolname,
       has_function_privilege(r.oid, p.oid, 'EXECUTE') AS can_execute
FROM pg_proc p
CROSS JOIN pg_roles r
WHERE p.pronamespace = 'public'::regnamespace
  AND r.rolname IN ('anon', 'authenticated')
  AND NOT EXISTS (SELECT FROM pg_depend d
                  WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                    AND d.deptype = 'e')
ORDER BY 1, 3

-- name: api-roles
SELECT rolname FROM pg_roles WHERE rolname IN ('anon', 'authenticated') ORDER BY 1

-- name: call-with-nulls
-- A statement calling the function with NULL arguments, built by the server from the
-- catalog (the function is named by its oid, never by interpolated text).
SELECT format('SELECT %%s(%%s)', p.oid::regproc,
              coalesce(string_agg(format('NULL::%%s', format_type(t.type, NULL)), ', '
                                  ORDER BY t.ord), ''))
FROM pg_proc p
LEFT JOIN LATERAL unnest(p.proargtypes::oid[]) WITH ORDINALITY AS t(type, ord) ON true
WHERE p.oid = %s
GROUP BY p.oid

-- name: workspace-tables
-- Tables holding workspace data (a workspace_id or buyer_workspace_id column, or the
-- workspaces table itself) and whether row level security is on.
SELECT c.relname, c.relrowsecurity
FROM pg_class c
WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
  AND (c.relname = 'workspaces' OR EXISTS (
        SELECT FROM pg_attribute a
        WHERE a.attrelid = c.oid AND NOT a.attisdropped AND a.attnum > 0
          AND a.attname IN ('workspace_id', 'buyer_workspace_id')))
ORDER BY 1
