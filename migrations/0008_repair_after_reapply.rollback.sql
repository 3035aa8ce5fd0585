-- 0008_repair_after_reapply changes no schema: it only re-derived leads_marked_at for
-- pending purchases whose leads were already counted as sold. Nothing to undo; the
-- statement below keeps this file a valid, empty step.
SELECT 1;
