-- When the artifact's blob moved to the permanent area (on its first approval). The blob
-- stays there if the artifact is quarantined later; `artifacts::blob_area` reads this.
ALTER TABLE artifacts ADD COLUMN promoted_at BIGINT;
-- Every artifact that was ever approved was signed then.
UPDATE artifacts SET promoted_at = updated_at WHERE status = 'approved' OR id IN (SELECT artifact_id FROM signatures);
