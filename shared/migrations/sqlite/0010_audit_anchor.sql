-- Issue 21: signed checkpoints are append-only like the log they vouch for, and every
-- entry has one of the four outcomes.
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
CREATE TRIGGER audit_log_outcome BEFORE INSERT ON audit_log
WHEN NEW.outcome NOT IN ('success', 'denied', 'failure', 'error')
BEGIN SELECT RAISE(ABORT, 'audit_log: outcome must be success, denied, failure or error'); END;
