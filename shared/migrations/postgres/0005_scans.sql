-- One row per scan attempt that ended (succeeded or failed). `event_id` is the event that
-- asked for it: a redelivered event never produces a second result set.
CREATE TABLE scans (
    id              TEXT PRIMARY KEY,
    artifact_id     TEXT NOT NULL REFERENCES artifacts(id),
    event_id        TEXT NOT NULL UNIQUE,
    status          TEXT NOT NULL,
    kind            TEXT,
    trivy_version   TEXT,
    db_updated_at   TEXT,
    findings        TEXT NOT NULL,
    summary         TEXT NOT NULL,
    error           TEXT,
    started_at      BIGINT NOT NULL,
    finished_at     BIGINT NOT NULL
);
CREATE INDEX scans_artifact ON scans(artifact_id, finished_at);

-- Waivers of a vulnerability id or a package, for one artifact or all, until they expire.
CREATE TABLE exceptions (
    id               TEXT PRIMARY KEY,
    artifact_id      TEXT REFERENCES artifacts(id),
    vulnerability_id TEXT,
    package          TEXT,
    justification    TEXT NOT NULL,
    expires_at       BIGINT NOT NULL,
    created_by       TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    revoked_at       BIGINT,
    -- Set once the artifacts it covered were re-evaluated after it expired or was revoked.
    ended_handled    BIGINT NOT NULL DEFAULT 0
);

-- Machine-readable reasons of the last policy decision, and a manual release (the scan it covers).
ALTER TABLE artifacts ADD COLUMN policy_reasons TEXT;
ALTER TABLE artifacts ADD COLUMN released_scan_id TEXT;

-- Events whose handler kept failing: kept for operators (API and metrics), no longer retried.
ALTER TABLE outbox ADD COLUMN dead_at BIGINT;
