-- Broken on purpose: restores the body 0100 replaced (its comment line taken out again),
-- but with CREATE OR REPLACE from a definition that lacks the SET search_path line.
-- CREATE OR REPLACE resets every setting the statement does not repeat, so after this
-- rollback the function resolves table names through the caller's search_path.
-- rollback.round-trip fails: "search_path no longer pinned after rolling back 0100_...";
-- re-applying 0100 then carries the loss forward (it re-executes the installed definition).
DO $$
BEGIN
  EXECUTE regexp_replace(
    replace(
      pg_get_functiondef('purchase_with_credits(uuid, uuid, uuid[], numeric, numeric)'::regprocedure),
      E'  -- 0100: release candidate\n', ''),
    E'\n SET search_path TO [^\n]*', '');
END
$$;
