-- Catalog reads of the attacking security checks (harness/proofs/verify/checks/attacks.py).
-- "Ours" is every object of a schema that is not the system's (pg_catalog,
-- information_schema, pg_toast, temporary schemas) and that no extension owns; the
-- attacker's own schema (named by %(attacker)s where a query takes it) is left out.

-- name: routines
-- Every function, procedure and aggregate of ours, with its body (plpgsql and SQL text;
-- an SQL-standard body is read back by pg_get_functiondef) and its pinned search_path.
SELECT p.oid, p.oid::regprocedure::text AS signature, n.nspname, p.proname, p.prokind,
       l.lanname,
       CASE WHEN p.prosqlbody IS NOT NULL THEN pg_get_functiondef(p.oid)
            ELSE p.prosrc END AS body,
       (SELECT substr(c, length('search_path=') + 1) FROM unnest(p.proconfig) c
         WHERE c LIKE 'search_path=%%') AS search_path,
       p.prorettype = 'trigger'::regtype AS is_trigger,
       p.pronargs
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
JOIN pg_language l ON l.oid = p.prolang
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  AND n.nspname NOT LIKE 'pg_temp%%' AND n.nspname NOT LIKE 'pg_toast_temp%%'
  AND n.nspname <> %(attacker)s
  AND NOT EXISTS (SELECT FROM pg_depend d
                  WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                    AND d.deptype = 'e')
ORDER BY n.nspname, p.proname, p.oid

-- name: routine-dependencies
-- What SQL-standard bodies (BEGIN ATOMIC) call, recorded by the server: functions and
-- operators, as (schema, name, is_operator).
SELECT DISTINCT n.nspname, coalesce(f.proname, o.oprname) AS name, o.oid IS NOT NULL
FROM pg_depend d
LEFT JOIN pg_proc f ON d.refclassid = 'pg_proc'::regclass AND f.oid = d.refobjid
LEFT JOIN pg_operator o ON d.refclassid = 'pg_operator'::regclass AND o.oid = d.refobjid
JOIN pg_namespace n ON n.oid = coalesce(f.pronamespace, o.oprnamespace)
WHERE d.classid = 'pg_proc'::regclass AND d.objid = ANY (%(oids)s::oid[])
  AND d.refclassid IN ('pg_proc'::regclass, 'pg_operator'::regclass)
  AND d.deptype = 'n'

-- name: overloads
-- Every function or aggregate of these names in any schema, with what a shadow needs
-- to copy its signature: argument types, modes and names, defaults, variadic, result.
SELECT p.oid, n.nspname, p.proname, p.prokind,
       p.proargtypes::oid[] AS argtypes,
       coalesce(p.proallargtypes, p.proargtypes::oid[]) AS allargtypes,
       p.proargmodes::text[] AS argmodes, p.proargnames, p.pronargdefaults,
       p.provariadic, p.prorettype, p.proretset,
       coalesce((SELECT a.aggkind FROM pg_aggregate a WHERE a.aggfnoid = p.oid), '') AS aggkind
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE p.proname = ANY (%(names)s::text[])
  AND n.nspname <> %(attacker)s
ORDER BY p.oid

-- name: operators
-- Every operator of these names in any schema: (oid, schema, name, left, right, result);
-- 0 for the missing side of a prefix operator.
SELECT o.oid, n.nspname, o.oprname, o.oprleft, o.oprright, o.oprresult
FROM pg_operator o
JOIN pg_namespace n ON n.oid = o.oprnamespace
WHERE o.oprname = ANY (%(names)s::text[])
  AND n.nspname <> %(attacker)s
ORDER BY o.oid

-- name: types
-- Every type by oid: its name as SQL spells it, its kind (b base, c composite, d domain,
-- e enum, p pseudo, r range, m multirange), its array type and element type.
SELECT t.oid, format_type(t.oid, NULL) AS name, t.typtype, t.typarray, t.typelem,
       t.typcategory
FROM pg_type t
WHERE t.typisdefined

-- name: type-pool
-- The types values of ours come in: columns of our tables, arguments and results of our
-- routines, plus the common scalar types; arrays of each are added by the caller.
SELECT DISTINCT a.atttypid
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  AND n.nspname NOT LIKE 'pg_temp%%' AND n.nspname <> %(attacker)s
UNION
SELECT DISTINCT u.t
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
CROSS JOIN LATERAL unnest(coalesce(p.proallargtypes, p.proargtypes::oid[])
                          || p.prorettype) AS u(t)
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  AND n.nspname NOT LIKE 'pg_temp%%' AND n.nspname <> %(attacker)s
UNION
-- The types of literals and of the common expressions (intervals of time arithmetic).
SELECT t::regtype::oid FROM unnest(ARRAY[
  'text', 'integer', 'bigint', 'numeric', 'boolean', 'uuid', 'jsonb',
  'timestamp with time zone', 'interval']) AS t

-- name: implicit-casts
-- (source, target) of every implicit cast: a call passing the source type reaches an
-- overload declared with the target type.
SELECT castsource, casttarget FROM pg_cast WHERE castcontext = 'i'

-- name: relations
-- Every table, view and sequence of ours: (schema, name, kind).
SELECT n.nspname, c.relname, c.relkind
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  AND n.nspname NOT LIKE 'pg_temp%%' AND n.nspname NOT LIKE 'pg_toast_temp%%'
  AND n.nspname <> %(attacker)s
  AND NOT EXISTS (SELECT FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                    AND d.deptype = 'e')
ORDER BY 1, 2

-- name: columns
-- The columns of one relation, in order: (name, type, updatable).
SELECT a.attname, format_type(a.atttypid, a.atttypmod),
       a.attgenerated = '' AND a.attidentity <> 'a'
FROM pg_attribute a
WHERE a.attrelid = %(relation)s::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum

-- name: schema-exists
SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = %(schema)s)

-- name: role-exists
SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = %(role)s)

-- name: attacker-state
-- What the attacker gained: a right only a superuser can give, and role memberships.
SELECT r.rolsuper OR r.rolbypassrls OR r.rolcreaterole OR r.rolcreatedb,
       (SELECT coalesce(array_agg(g.rolname ORDER BY g.rolname), '{}')
        FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
        WHERE m.member = r.oid)
FROM pg_roles r
WHERE r.rolname = %(attacker)s

-- name: data-relations
-- Every table and sequence of ours, yoyo's bookkeeping included: (schema, name, kind).
-- What a digest covers.
SELECT n.nspname, c.relname, c.relkind
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'S')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  AND n.nspname NOT LIKE 'pg_temp%%' AND n.nspname NOT LIKE 'pg_toast_temp%%'
  AND n.nspname <> %(attacker)s
ORDER BY 1, 2

-- name: count-rows
SELECT pg_catalog.count(*) FROM {relation}

-- name: digest-rows
SELECT pg_catalog.md5(coalesce(pg_catalog.string_agg(t::text, ',' ORDER BY t::text), ''))
FROM {relation} t

-- name: digest-sequence
SELECT pg_catalog.md5(last_value::text || ' ' || is_called::text) FROM {relation}

-- name: call-arguments
-- The input arguments of one routine: (position, type oid, type name, parameter name).
SELECT t.ord, t.type, format_type(t.type, NULL), coalesce(p.proargnames[t.ord], '')
FROM pg_proc p
CROSS JOIN LATERAL unnest(p.proargtypes::oid[]) WITH ORDINALITY AS t(type, ord)
WHERE p.oid = %(oid)s
ORDER BY t.ord

-- name: privileges
-- Every privilege anon, authenticated or PUBLIC holds on an object of ours: tables,
-- views, sequences, their columns, functions and schemas (CREATE), directly, through
-- PUBLIC or through a role they belong to. An ACL that was never set means the
-- default: EXECUTE for PUBLIC on functions, nothing on relations.
WITH grantee AS (
  SELECT r.oid, r.rolname FROM pg_roles r WHERE r.rolname IN ('anon', 'authenticated')
), rel AS (
  SELECT c.oid, n.nspname, c.relname, c.relkind, c.relowner, c.relacl
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
    AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
    AND n.nspname NOT LIKE 'pg_temp%%' AND n.nspname NOT LIKE 'pg_toast_temp%%'
), relpriv AS (
  SELECT unnest(CASE WHEN rel.relkind = 'S' THEN ARRAY['USAGE', 'SELECT', 'UPDATE']
                     ELSE ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE',
                                'REFERENCES', 'TRIGGER'] END) AS priv, rel.*
  FROM rel
), fn AS (
  SELECT p.oid, n.nspname, p.oid::regprocedure::text AS sig, p.proowner, p.proacl
  FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace
  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
    AND n.nspname NOT LIKE 'pg_temp%%'
)
SELECT g.rolname, r.priv, CASE r.relkind WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view'
                                         ELSE 'table' END,
       format('%%I.%%I', r.nspname, r.relname)
FROM relpriv r CROSS JOIN grantee g
WHERE CASE WHEN r.relkind = 'S' THEN has_sequence_privilege(g.oid, r.oid, r.priv)
           ELSE has_table_privilege(g.oid, r.oid, r.priv) END
UNION ALL
SELECT 'PUBLIC', a.privilege_type, CASE r.relkind WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view'
                                                  ELSE 'table' END,
       format('%%I.%%I', r.nspname, r.relname)
FROM rel r
CROSS JOIN LATERAL aclexplode(coalesce(r.relacl, acldefault(
  CASE WHEN r.relkind = 'S' THEN 's' ELSE 'r' END::"char", r.relowner))) a
WHERE a.grantee = 0
UNION ALL
SELECT g.rolname, c.priv, 'column', format('%%I.%%I.%%I', r.nspname, r.relname, a.attname)
FROM rel r
JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
CROSS JOIN grantee g
CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'REFERENCES']) AS c(priv)
WHERE r.relkind <> 'S'
  AND NOT has_table_privilege(g.oid, r.oid, c.priv)
  AND has_column_privilege(g.oid, r.oid, a.attnum, c.priv)
UNION ALL
SELECT 'PUBLIC', x.privilege_type, 'column',
       format('%%I.%%I.%%I', r.nspname, r.relname, a.attname)
FROM rel r
JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
CROSS JOIN LATERAL aclexplode(a.attacl) x
WHERE a.attacl IS NOT NULL AND x.grantee = 0
UNION ALL
SELECT g.rolname, 'EXECUTE', 'function', f.sig
FROM fn f CROSS JOIN grantee g
WHERE has_function_privilege(g.oid, f.oid, 'EXECUTE')
UNION ALL
SELECT 'PUBLIC', a.privilege_type, 'function', f.sig
FROM fn f
CROSS JOIN LATERAL aclexplode(coalesce(f.proacl, acldefault('f', f.proowner))) a
WHERE a.grantee = 0
UNION ALL
SELECT coalesce(g.rolname, 'PUBLIC'), 'CREATE', 'schema', quote_ident(n.nspname)
FROM pg_namespace n
CROSS JOIN (SELECT oid, rolname FROM grantee UNION ALL SELECT 0, NULL) g
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  AND n.nspname NOT LIKE 'pg_temp%%' AND n.nspname NOT LIKE 'pg_toast_temp%%'
  AND CASE WHEN g.oid = 0
           THEN EXISTS (SELECT FROM aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
                        WHERE a.grantee = 0 AND a.privilege_type = 'CREATE')
           ELSE has_schema_privilege(g.oid, n.oid, 'CREATE') END
ORDER BY 1, 4, 2

-- The contract calls the hijack check makes, as service_role and as the connecting role.
-- Every name is schema-qualified and every operator pg_catalog's, so only what the money
-- functions resolve themselves is exposed to the planted shadows.

-- name: call-add-credits
SELECT public.add_credits(%(workspace)s, %(amount)s, %(package)s)::text

-- name: call-add-credits-reference
SELECT public.add_credits(%(workspace)s, %(amount)s, %(package)s, %(reference)s)::text

-- name: call-atomic
SELECT public.purchase_leads_atomic(%(workspace)s, %(user)s, %(leads)s::uuid[], %(price)s,
                                    %(key)s, %(fingerprint)s, %(config)s)::text

-- name: call-debit
SELECT success, error_message, new_balance, purchase_id
FROM public.purchase_with_credits(%(workspace)s, %(user)s, %(leads)s::uuid[], %(price)s,
                                  %(price)s)

-- name: call-add-item
INSERT INTO public.marketplace_purchase_items (purchase_id, lead_id, price_at_purchase)
VALUES (%(purchase)s, %(lead)s, %(price)s)

-- name: call-mark-sold
SELECT public.mark_leads_sold_batch(%(leads)s::uuid[])

-- name: call-complete
SELECT public.complete_purchase(%(purchase)s)::text

-- name: call-refund
SELECT public.refund_purchase(%(purchase)s)::text

-- name: call-reconcile
SELECT public.reconcile_purchase(%(purchase)s, %(config)s)

-- name: call-queue-confirmation
SELECT public.queue_purchase_confirmation(%(purchase)s, %(config)s) IS NOT NULL

-- name: call-response-leads
SELECT public.purchase_response_leads(%(purchase)s)::text

-- name: call-commission
SELECT rate::text, amount::text, bonuses::text
FROM public.calculate_commission(%(price)s, %(base)s, %(bonus)s, %(pass_rate)s,
                                 %(created)s, %(sold)s, %(config)s)

-- name: call-enqueue
SELECT public.enqueue_email(%(kind)s, %(payload)s, NULL, %(workspace)s) IS NOT NULL

-- name: wallet
SELECT balance FROM public.workspace_credits
WHERE workspace_id OPERATOR(pg_catalog.=) %(workspace)s

-- name: attacker-seen
-- How often the attacker's logger ran: its sequence, which no rollback takes back.
SELECT coalesce(s.last_value, 0)
FROM pg_catalog.pg_sequences s
WHERE s.schemaname = %(attacker)s AND s.sequencename = 'seen_seq'

-- name: planter
-- The planting session's helpers, run as the attacker: harness_attacker_setup makes its
-- logger (a sequence, a log table and the function every shadow calls, which also tries
-- to take a right only a superuser gives and to move credits to the attacker's
-- workspace); harness_plant creates the shadows the check planned, each DDL built here
-- with format() from catalog type oids, and answers how many could not be created.
CREATE OR REPLACE FUNCTION pg_temp.harness_attacker_setup(p_attacker text, p_thief uuid)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $setup$
BEGIN
  EXECUTE format('CREATE SEQUENCE %I.seen_seq', p_attacker);
  EXECUTE format('CREATE TABLE %I.seen_log (what text, by_role text)', p_attacker);
  EXECUTE format($logger$
    CREATE FUNCTION %1$I.seen(p_what text) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $body$
    BEGIN
      PERFORM nextval(%2$L::regclass);
      RAISE NOTICE 'harness-hijack: %%', p_what;
      BEGIN
        EXECUTE %3$L;
      EXCEPTION WHEN OTHERS THEN NULL;
      END;
      BEGIN
        UPDATE public.workspace_credits SET balance = balance + 1000
        WHERE workspace_id = %4$L::uuid;
      EXCEPTION WHEN OTHERS THEN NULL;
      END;
      BEGIN
        INSERT INTO %1$I.seen_log (what, by_role) VALUES (p_what, current_user);
      EXCEPTION WHEN OTHERS THEN NULL;
      END;
    END
    $body$ $logger$,
    p_attacker, format('%I.seen_seq', p_attacker),
    format('ALTER ROLE %I BYPASSRLS', p_attacker), p_thief);
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO PUBLIC', p_attacker);
  EXECUTE format('GRANT USAGE ON SEQUENCE %I.seen_seq TO PUBLIC', p_attacker);
  EXECUTE format('GRANT INSERT ON %I.seen_log TO PUBLIC', p_attacker);
END
$setup$;

CREATE OR REPLACE FUNCTION pg_temp.harness_try(p_first text, p_second text)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $try$
BEGIN
  BEGIN
    EXECUTE p_first;
    RETURN true;
  EXCEPTION WHEN OTHERS THEN
    IF p_second IS NULL THEN
      RETURN false;
    END IF;
  END;
  BEGIN
    EXECUTE p_second;
    RETURN true;
  EXCEPTION WHEN OTHERS THEN
    RETURN false;
  END;
END
$try$;

CREATE OR REPLACE FUNCTION pg_temp.harness_plant(p_attacker text, p_plan jsonb)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $plant$
DECLARE
  s          jsonb;
  n          integer := 0;
  v_failed   integer := 0;
  v_kind     text;
  v_log      text;
  v_params   text;
  v_types    text;
  v_call     text;
  v_returns  text;
  v_empty    text;
  v_body     text;
  v_fallback text;
  v_helper   text;
  v_ok       boolean;
  v_nargs    integer;
BEGIN
  FOR s IN SELECT value FROM jsonb_array_elements(p_plan) LOOP
    n := n + 1;
    v_kind := s ->> 'kind';
    v_log := format('SELECT %I.seen(%L);', p_attacker, s ->> 'label');
    IF v_kind = 'o' THEN
      IF (s ->> 'name') !~ '^[-+*/<>=~!@#%^&|`?]+$' THEN
        v_failed := v_failed + 1;
        CONTINUE;
      END IF;
      v_helper := format('%I.op_%s', p_attacker, n);
      v_types := concat_ws(', ', format_type((s ->> 'left')::oid, NULL),
                           format_type((s ->> 'right')::oid, NULL));
      v_call := CASE WHEN s ->> 'left' IS NULL
                     THEN format('OPERATOR(%I.%s) $1', s ->> 'schema', s ->> 'name')
                     ELSE format('$1 OPERATOR(%I.%s) $2', s ->> 'schema', s ->> 'name') END;
      v_body := format('CREATE FUNCTION %s(%s) RETURNS %s LANGUAGE sql VOLATILE '
                       'SET search_path = pg_catalog, pg_temp AS %L',
                       v_helper, v_types, format_type((s ->> 'ret')::oid, NULL),
                       v_log || ' SELECT ' || v_call);
      v_fallback := format('CREATE FUNCTION %s(%s) RETURNS %s LANGUAGE sql VOLATILE '
                           'SET search_path = pg_catalog, pg_temp AS %L',
                           v_helper, v_types, format_type((s ->> 'ret')::oid, NULL),
                           v_log || format(' SELECT NULL::%s', format_type((s ->> 'ret')::oid, NULL)));
      v_ok := pg_temp.harness_try(v_body, v_fallback)
        AND pg_temp.harness_try(
              format('CREATE OPERATOR %I.%s (%s FUNCTION = %s)', s ->> 'target', s ->> 'name',
                     concat(CASE WHEN s ->> 'left' IS NOT NULL
                                 THEN format('LEFTARG = %s, ', format_type((s ->> 'left')::oid, NULL)) END,
                            format('RIGHTARG = %s, ', format_type((s ->> 'right')::oid, NULL))),
                     v_helper), NULL);
    ELSIF v_kind = 'r' THEN
      v_ok := pg_temp.harness_try(
        format('CREATE VIEW %I.%I AS SELECT * FROM %I.%I WHERE %I.seen(%L) IS NULL '
               'WITH CASCADED CHECK OPTION', s ->> 'target', s ->> 'name', s ->> 'schema',
               s ->> 'name', p_attacker, s ->> 'label'), NULL);
    ELSE
      v_nargs := jsonb_array_length(s -> 'args');
      SELECT coalesce(string_agg(concat_ws(' ',
               CASE WHEN (s ->> 'variadic')::boolean AND a.ord = v_nargs THEN 'VARIADIC' END,
               CASE WHEN coalesce(s -> 'names' ->> (a.ord::int - 1), '') <> ''
                    THEN quote_ident(s -> 'names' ->> (a.ord::int - 1)) END,
               format_type(a.t::oid, NULL),
               CASE WHEN a.ord > v_nargs - (s ->> 'ndefaults')::int
                         AND NOT ((s ->> 'variadic')::boolean AND a.ord = v_nargs)
                    THEN 'DEFAULT NULL' END), ', ' ORDER BY a.ord), ''),
             coalesce(string_agg(format_type(a.t::oid, NULL), ', ' ORDER BY a.ord), ''),
             coalesce(string_agg(
               CASE WHEN (s ->> 'variadic')::boolean AND a.ord = v_nargs
                      THEN format('VARIADIC $%s', a.ord)
                    WHEN s -> 'original' ->> (a.ord::int - 1) IS NOT NULL
                      THEN format('$%s::%s', a.ord,
                                  format_type((s -> 'original' ->> (a.ord::int - 1))::oid, NULL))
                    ELSE format('$%s', a.ord) END, ', ' ORDER BY a.ord), '')
        INTO v_params, v_types, v_call
      FROM jsonb_array_elements_text(s -> 'args') WITH ORDINALITY AS a(t, ord);
      IF v_kind = 'a' THEN
        v_helper := format('%I.step_%s', p_attacker, n);
        v_ok := pg_temp.harness_try(
                  format('CREATE FUNCTION %s(%s) RETURNS %s LANGUAGE sql VOLATILE '
                         'SET search_path = pg_catalog, pg_temp AS %L',
                         v_helper, concat_ws(', ', format_type((s ->> 'ret')::oid, NULL),
                                             nullif(v_types, '')),
                         format_type((s ->> 'ret')::oid, NULL), v_log || ' SELECT $1'), NULL)
          AND pg_temp.harness_try(
                format('CREATE AGGREGATE %I.%I(%s) (SFUNC = %s, STYPE = %s)', s ->> 'target',
                       s ->> 'name', coalesce(nullif(v_types, ''), '*'), v_helper,
                       format_type((s ->> 'ret')::oid, NULL)), NULL);
      ELSIF v_kind = 'p' THEN
        v_ok := pg_temp.harness_try(
          format('CREATE PROCEDURE %I.%I(%s) LANGUAGE sql AS %L', s ->> 'target', s ->> 'name',
                 v_params, v_log || format(' CALL %I.%I(%s)', s ->> 'schema', s ->> 'name', v_call)),
          format('CREATE PROCEDURE %I.%I(%s) LANGUAGE sql AS %L', s ->> 'target', s ->> 'name',
                 v_params, v_log));
      ELSE
        SELECT concat_ws(', ', nullif(v_params, ''),
                         string_agg(concat_ws(' ', 'OUT', quote_ident(nullif(m.name, '')),
                                              format_type(o.t::oid, NULL)), ', ' ORDER BY o.ord)),
               string_agg(format('NULL::%s', format_type(o.t::oid, NULL)), ', ' ORDER BY o.ord),
               count(*)
          INTO v_params, v_empty, v_nargs
        FROM jsonb_array_elements_text(s -> 'out_types') WITH ORDINALITY AS o(t, ord)
        LEFT JOIN jsonb_array_elements_text(s -> 'out_names') WITH ORDINALITY AS m(name, ord2)
          ON m.ord2 = o.ord;
        v_returns := CASE WHEN (s ->> 'retset')::boolean THEN 'SETOF ' ELSE '' END
          || CASE WHEN v_nargs > 1 OR (s ->> 'record')::boolean THEN 'record'
                  WHEN v_nargs = 1 THEN format_type((s -> 'out_types' ->> 0)::oid, NULL)
                  ELSE format_type((s ->> 'ret')::oid, NULL) END;
        v_empty := coalesce(v_empty, format('NULL::%s', format_type((s ->> 'ret')::oid, NULL)));
        v_fallback := v_log || ' SELECT ' || v_empty
          || CASE WHEN (s ->> 'retset')::boolean THEN ' WHERE false' ELSE '' END;
        v_body := CASE
          WHEN (s ->> 'record')::boolean THEN v_fallback
          WHEN format_type((s ->> 'ret')::oid, NULL) = 'void'
            THEN v_log || format(' SELECT %I.%I(%s)', s ->> 'schema', s ->> 'name', v_call)
          ELSE v_log || format(' SELECT * FROM %I.%I(%s)', s ->> 'schema', s ->> 'name', v_call)
        END;
        v_ok := pg_temp.harness_try(
          format('CREATE FUNCTION %I.%I(%s) RETURNS %s LANGUAGE sql VOLATILE '
                 'SET search_path = pg_catalog, pg_temp AS %L',
                 s ->> 'target', s ->> 'name', v_params, v_returns, v_body),
          format('CREATE FUNCTION %I.%I(%s) RETURNS %s LANGUAGE sql VOLATILE '
                 'SET search_path = pg_catalog, pg_temp AS %L',
                 s ->> 'target', s ->> 'name', v_params, v_returns, v_fallback));
      END IF;
    END IF;
    IF NOT v_ok THEN
      v_failed := v_failed + 1;
    END IF;
  END LOOP;
  RETURN v_failed;
END
$plant$

-- name: attacker-setup
SELECT pg_temp.harness_attacker_setup(%(attacker)s, %(thief)s)

-- name: plant
SELECT pg_temp.harness_plant(%(attacker)s, %(plan)s)

-- name: supabase-roles
-- Supabase's API roles, created when absent (cluster-wide, as 0001 does).
DO $roles$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'anon') THEN
    CREATE ROLE anon NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated') THEN
    CREATE ROLE authenticated NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role') THEN
    CREATE ROLE service_role NOLOGIN;
  END IF;
END
$roles$

-- name: supabase-default-privileges
-- What a Supabase project runs for the role that migrates (its postgres role): every
-- table, sequence and function it creates from now on is granted to the API roles, in
-- the public schema and everywhere else.
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
  GRANT ALL ON TABLES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
  GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
  GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;

-- name: api-roles
SELECT rolname FROM pg_roles WHERE rolname IN ('anon', 'authenticated') ORDER BY 1

-- name: key-columns
-- The columns of a table's primary key or unique constraints: what a foreign key may
-- reference.
SELECT DISTINCT a.attname, format_type(a.atttypid, a.atttypmod)
FROM pg_index i
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
WHERE i.indrelid = %(relation)s::regclass AND i.indisunique AND i.indnkeyatts = 1
ORDER BY 1

-- name: our-schemas
SELECT n.nspname FROM pg_namespace n
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  AND n.nspname NOT LIKE 'pg_temp%%' AND n.nspname NOT LIKE 'pg_toast_temp%%'
ORDER BY 1

-- What security.low-role-attempts tries as anon and as authenticated. {relation},
-- {column}, {type} and {schema} are filled with psycopg.sql identifiers and catalog
-- type names.

-- name: attempt-select
SELECT * FROM {relation} LIMIT 1

-- name: attempt-insert
INSERT INTO {relation} DEFAULT VALUES

-- name: attempt-update
UPDATE {relation} SET {column} = {column}

-- name: attempt-delete
DELETE FROM {relation}

-- name: attempt-truncate
TRUNCATE {relation}

-- name: attempt-select-column
SELECT {column} FROM {relation} LIMIT 1

-- name: attempt-insert-column
INSERT INTO {relation} ({column}) SELECT NULL WHERE false

-- name: attempt-references
-- In a schema of the check's where the role may create (a temporary table may not
-- reference a permanent one): only the REFERENCES privilege can stop it.
CREATE TABLE {probe}.harness_references (c {type} REFERENCES {relation} ({column}))

-- name: attempt-trigger-function
CREATE FUNCTION pg_temp.harness_probe() RETURNS trigger LANGUAGE plpgsql
AS $probe$ BEGIN RETURN NEW; END $probe$

-- name: attempt-trigger
CREATE TRIGGER harness_probe BEFORE INSERT ON {relation}
FOR EACH ROW EXECUTE FUNCTION pg_temp.harness_probe()

-- name: attempt-nextval
SELECT pg_catalog.nextval({sequence}::regclass)

-- name: attempt-setval
SELECT pg_catalog.setval({sequence}::regclass, 1, false)

-- name: attempt-sequence-select
SELECT * FROM {relation}

-- name: attempt-create
CREATE TABLE {schema}.harness_probe (x integer)

-- name: probe-schema
CREATE SCHEMA {probe}

-- name: probe-schema-grant
GRANT USAGE, CREATE ON SCHEMA {probe} TO {role}

-- name: probe-schema-drop
DROP SCHEMA {probe} CASCADE

-- name: attempt-all
-- The low role's attempts in one call: each statement in its own subtransaction (what
-- succeeds stays done, as in autocommit), the ones marked to roll back undone after they
-- succeed; answers each one's outcome, SQLSTATE and message. Run after SET ROLE, so every
-- statement is checked against that role's privileges.
CREATE OR REPLACE FUNCTION pg_temp.harness_attempt_all(p_statements text[], p_rollback boolean[])
RETURNS TABLE (n integer, succeeded boolean, state text, message text)
LANGUAGE plpgsql
AS $attempt$
BEGIN
  FOR i IN 1 .. coalesce(array_length(p_statements, 1), 0) LOOP
    n := i;
    succeeded := true;
    state := NULL;
    message := NULL;
    BEGIN
      EXECUTE p_statements[i];
      IF p_rollback[i] THEN
        RAISE EXCEPTION USING ERRCODE = 'HP001', MESSAGE = 'harness: undo a probe';
      END IF;
    EXCEPTION WHEN OTHERS THEN
      IF SQLSTATE <> 'HP001' THEN
        succeeded := false;
        state := SQLSTATE;
        message := SQLERRM;
      END IF;
    END;
    RETURN NEXT;
  END LOOP;
END
$attempt$

-- name: attempt-run
SELECT n, succeeded, state, message
FROM pg_temp.harness_attempt_all(%(statements)s::text[], %(rollback)s::boolean[])
ORDER BY n
