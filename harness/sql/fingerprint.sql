-- The schema fingerprint, read from the catalogs. Every query returns (key, attrs):
-- a stable name for one object and a jsonb of the attributes a review would compare.
-- Scope: every user schema; objects that belong to an extension and yoyo's own
-- bookkeeping tables (%(skip)s, a text[] of table names) are left out.
-- Names are schema-qualified only outside public.

-- name: tables
SELECT CASE WHEN n.nspname = 'public' THEN '' ELSE quote_ident(n.nspname) || '.' END
         || quote_ident(c.relname) AS key,
       jsonb_build_object(
         'kind', CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table'
                   WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                   WHEN 'f' THEN 'foreign table' END,
         'owner', pg_get_userbyid(c.relowner),
         'rls', c.relrowsecurity,
         'rls_forced', c.relforcerowsecurity,
         'view_md5', CASE WHEN c.relkind IN ('v', 'm') THEN md5(pg_get_viewdef(c.oid)) END,
         'grants', coalesce((
           SELECT jsonb_object_agg(g.grantee, g.privileges)
           FROM (SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                             ELSE pg_get_userbyid(a.grantee) END AS grantee,
                        jsonb_agg(a.privilege_type || CASE WHEN a.is_grantable
                                                           THEN ' WITH GRANT OPTION' ELSE '' END
                                  ORDER BY a.privilege_type) AS privileges
                 FROM aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
                 GROUP BY a.grantee) g), '{}'::jsonb)
       ) AS attrs
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%%'
  AND NOT (n.nspname = 'public' AND c.relname = ANY (%(skip)s))
  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1;

-- name: columns
SELECT CASE WHEN n.nspname = 'public' THEN '' ELSE quote_ident(n.nspname) || '.' END
         || quote_ident(c.relname) || '.' || quote_ident(a.attname) AS key,
       jsonb_build_object(
         'position', row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum),
         'type', format_type(a.atttypid, a.atttypmod),
         'default', pg_get_expr(ad.adbin, ad.adrelid),
         'not_null', a.attnotnull,
         'identity', nullif(a.attidentity, ''),
         'generated', nullif(a.attgenerated, ''),
         'collation', CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
                           THEN (SELECT collname FROM pg_collation WHERE oid = a.attcollation)
                      END,
         'grants', (SELECT jsonb_object_agg(g.grantee, g.privileges)
                    FROM (SELECT CASE WHEN x.grantee = 0 THEN 'PUBLIC'
                                      ELSE pg_get_userbyid(x.grantee) END AS grantee,
                                 jsonb_agg(x.privilege_type ORDER BY x.privilege_type)
                                   AS privileges
                          FROM aclexplode(a.attacl) x GROUP BY x.grantee) g)
       ) AS attrs
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
WHERE a.attnum > 0 AND NOT a.attisdropped
  AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%%'
  AND NOT (n.nspname = 'public' AND c.relname = ANY (%(skip)s))
  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1;

-- name: constraints
SELECT CASE WHEN n.nspname = 'public' THEN '' ELSE quote_ident(n.nspname) || '.' END
         || coalesce(quote_ident(c.relname), format_type(co.contypid, NULL))
         || '.' || quote_ident(co.conname) AS key,
       jsonb_build_object(
         'type', CASE co.contype WHEN 'c' THEN 'check' WHEN 'f' THEN 'foreign key'
                   WHEN 'p' THEN 'primary key' WHEN 'u' THEN 'unique'
                   WHEN 't' THEN 'constraint trigger' WHEN 'x' THEN 'exclusion'
                   WHEN 'n' THEN 'not null' ELSE co.contype::text END,
         'definition', pg_get_constraintdef(co.oid),
         'deferrable', co.condeferrable,
         'deferred', co.condeferred,
         'validated', co.convalidated
       ) AS attrs
FROM pg_constraint co
JOIN pg_namespace n ON n.oid = co.connamespace
LEFT JOIN pg_class c ON c.oid = co.conrelid
WHERE co.contype <> 'n'  -- PostgreSQL 18 NOT NULL constraints: already the columns' not_null
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%%'
  AND NOT (n.nspname = 'public' AND coalesce(c.relname, '') = ANY (%(skip)s))
  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1;

-- name: indexes
SELECT CASE WHEN n.nspname = 'public' THEN '' ELSE quote_ident(n.nspname) || '.' END
         || quote_ident(ic.relname) AS key,
       jsonb_build_object(
         'table', tc.relname,
         'definition', pg_get_indexdef(i.indexrelid),
         'valid', i.indisvalid
       ) AS attrs
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class tc ON tc.oid = i.indrelid
JOIN pg_namespace n ON n.oid = ic.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%%'
  AND NOT (n.nspname = 'public' AND tc.relname = ANY (%(skip)s))
  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = tc.oid AND d.deptype = 'e')
ORDER BY 1;

-- name: enums
SELECT CASE WHEN n.nspname = 'public' THEN '' ELSE quote_ident(n.nspname) || '.' END
         || quote_ident(t.typname) AS key,
       jsonb_build_object(
         'labels', (SELECT jsonb_agg(e.enumlabel ORDER BY e.enumsortorder)
                    FROM pg_enum e WHERE e.enumtypid = t.oid),
         'owner', pg_get_userbyid(t.typowner)
       ) AS attrs
FROM pg_type t
JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE t.typtype = 'e'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%%'
  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
                  AND d.objid = t.oid AND d.deptype = 'e')
ORDER BY 1;

-- name: sequences
SELECT CASE WHEN n.nspname = 'public' THEN '' ELSE quote_ident(n.nspname) || '.' END
         || quote_ident(c.relname) AS key,
       jsonb_build_object(
         'type', format_type(s.seqtypid, NULL),
         'start', s.seqstart, 'increment', s.seqincrement,
         'min', s.seqmin, 'max', s.seqmax, 'cycle', s.seqcycle,
         'owned_by', (SELECT tc.relname || '.' || a.attname
                      FROM pg_depend d
                      JOIN pg_class tc ON tc.oid = d.refobjid
                      JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                      WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                        AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
                      LIMIT 1),
         'owner', pg_get_userbyid(c.relowner),
         'grants', coalesce((
           SELECT jsonb_object_agg(g.grantee, g.privileges)
           FROM (SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                             ELSE pg_get_userbyid(a.grantee) END AS grantee,
                        jsonb_agg(a.privilege_type ORDER BY a.privilege_type) AS privileges
                 FROM aclexplode(coalesce(c.relacl, acldefault('s', c.relowner))) a
                 GROUP BY a.grantee) g), '{}'::jsonb)
       ) AS attrs
FROM pg_sequence s
JOIN pg_class c ON c.oid = s.seqrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%%'
  AND NOT (n.nspname = 'public' AND c.relname LIKE ANY (
           SELECT t || '\_%%' FROM unnest(%(skip)s::text[]) t))
  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1;

-- name: functions
SELECT CASE WHEN n.nspname = 'public' THEN '' ELSE quote_ident(n.nspname) || '.' END
         || quote_ident(p.proname) || '('
         || coalesce((SELECT string_agg(format_type(t.oid, NULL), ', ' ORDER BY a.ord)
                      FROM unnest(p.proargtypes) WITH ORDINALITY AS a(typ, ord)
                      JOIN pg_type t ON t.oid = a.typ), '')
         || ')' AS key,
       jsonb_build_object(
         'kind', CASE p.prokind WHEN 'f' THEN 'function' WHEN 'p' THEN 'procedure'
                   WHEN 'a' THEN 'aggregate' WHEN 'w' THEN 'window function' END,
         'arguments', pg_get_function_arguments(p.oid),
         'result', pg_get_function_result(p.oid),
         'language', l.lanname,
         'body_md5', md5(coalesce(p.prosrc, '') || coalesce(p.probin, '')),
         'body', CASE WHEN %(bodies)s THEN p.prosrc END,
         'volatility', CASE p.provolatile WHEN 'i' THEN 'immutable' WHEN 's' THEN 'stable'
                         ELSE 'volatile' END,
         'strict', p.proisstrict,
         'security_definer', p.prosecdef,
         'leakproof', p.proleakproof,
         'parallel', CASE p.proparallel WHEN 's' THEN 'safe' WHEN 'r' THEN 'restricted'
                       ELSE 'unsafe' END,
         'config', to_jsonb(coalesce(p.proconfig, '{}'::text[])),
         'owner', pg_get_userbyid(p.proowner),
         'grants', coalesce((
           SELECT jsonb_object_agg(g.grantee, g.privileges)
           FROM (SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                             ELSE pg_get_userbyid(a.grantee) END AS grantee,
                        jsonb_agg(a.privilege_type ORDER BY a.privilege_type) AS privileges
                 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                 GROUP BY a.grantee) g), '{}'::jsonb)
       ) AS attrs
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
JOIN pg_language l ON l.oid = p.prolang
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%%'
  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                  AND d.objid = p.oid AND d.deptype = 'e')
ORDER BY 1;

-- name: triggers
SELECT CASE WHEN n.nspname = 'public' THEN '' ELSE quote_ident(n.nspname) || '.' END
         || quote_ident(c.relname) || '.' || quote_ident(tg.tgname) AS key,
       jsonb_build_object(
         'definition', pg_get_triggerdef(tg.oid),
         'enabled', CASE tg.tgenabled WHEN 'O' THEN 'enabled' WHEN 'D' THEN 'disabled'
                      WHEN 'R' THEN 'replica' WHEN 'A' THEN 'always' END
       ) AS attrs
FROM pg_trigger tg
JOIN pg_class c ON c.oid = tg.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT tg.tgisinternal
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%%'
ORDER BY 1;

-- name: policies
SELECT CASE WHEN n.nspname = 'public' THEN '' ELSE quote_ident(n.nspname) || '.' END
         || quote_ident(c.relname) || '.' || quote_ident(po.polname) AS key,
       jsonb_build_object(
         'command', CASE po.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT'
                      WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
         'permissive', po.polpermissive,
         'roles', (SELECT jsonb_agg(x.name ORDER BY x.name)
                   FROM (SELECT CASE WHEN r = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(r) END
                                  AS name
                         FROM unnest(po.polroles) r) x),
         'using', pg_get_expr(po.polqual, po.polrelid),
         'with_check', pg_get_expr(po.polwithcheck, po.polrelid)
       ) AS attrs
FROM pg_policy po
JOIN pg_class c ON c.oid = po.polrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
ORDER BY 1;

-- name: extensions
SELECT e.extname AS key,
       jsonb_build_object('version', e.extversion, 'schema', n.nspname) AS attrs
FROM pg_extension e
JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname <> 'plpgsql'
ORDER BY 1;

-- name: schemas
SELECT quote_ident(n.nspname) AS key,
       jsonb_build_object('owner', pg_get_userbyid(n.nspowner)) AS attrs
FROM pg_namespace n
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'public')
  AND n.nspname NOT LIKE 'pg\_%%'
  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass
                  AND d.objid = n.oid AND d.deptype = 'e')
ORDER BY 1;
