-- Issue 21: signed checkpoints are append-only like the log they vouch for, and every
-- entry has one of the four outcomes.
CREATE FUNCTION audit_checkpoints_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_checkpoints is append-only';
END;
$$;
CREATE TRIGGER audit_checkpoints_no_change BEFORE UPDATE OR DELETE ON audit_checkpoints
FOR EACH ROW EXECUTE FUNCTION audit_checkpoints_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
FOR EACH STATEMENT EXECUTE FUNCTION audit_checkpoints_append_only();
ALTER TABLE audit_log ADD CONSTRAINT audit_log_outcome
    CHECK (outcome IN ('success', 'denied', 'failure', 'error')) NOT VALID;
