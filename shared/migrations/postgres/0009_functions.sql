-- Functions as the cluster runs them: claims with leases instead of "only one of me".
ALTER TABLE outbox ADD COLUMN lease_owner TEXT;
ALTER TABLE outbox ADD COLUMN lease_until BIGINT;
CREATE INDEX outbox_due ON outbox(delivered_at, dead_at, next_attempt_at);

-- Deliveries the Broker made to a receiver: one claim per event id, with its attempts.
CREATE TABLE event_claims (
    event_id    TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    lease_until BIGINT NOT NULL,
    attempts    BIGINT NOT NULL,
    done_at     BIGINT,
    created_at  BIGINT NOT NULL
);

-- Background jobs that one replica runs at a time.
CREATE TABLE job_leases (
    name        TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    lease_until BIGINT NOT NULL
);

-- Who works on an upload or a verification holds the artifact until then.
ALTER TABLE artifacts ADD COLUMN lease_until BIGINT;
-- A failure of the scanner, not of the artifact: the owner or an admin may retry it.
ALTER TABLE artifacts ADD COLUMN retryable BIGINT NOT NULL DEFAULT 0;

-- Rate-limit windows shared by replicas (fixed one-minute windows).
CREATE TABLE rate_windows (
    bucket  TEXT NOT NULL,
    minute  BIGINT NOT NULL,
    hits    BIGINT NOT NULL,
    PRIMARY KEY (bucket, minute)
);

-- Artifact names have owners (the first publisher, and whom admins grant): only they and
-- admins may add versions. Existing names belong to their first uploader.
CREATE TABLE artifact_names (
    name        TEXT PRIMARY KEY,
    created_at  BIGINT NOT NULL
);
CREATE TABLE name_owners (
    name        TEXT NOT NULL REFERENCES artifact_names(name),
    user_id     TEXT NOT NULL REFERENCES users(id),
    granted_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (name, user_id)
);
INSERT INTO artifact_names (name, created_at)
    SELECT name, MIN(created_at) FROM artifacts GROUP BY name;
INSERT INTO name_owners (name, user_id, granted_by, created_at)
    SELECT a.name, a.owner_id, 'migration', a.created_at FROM artifacts a
    WHERE a.created_at = (SELECT MIN(b.created_at) FROM artifacts b WHERE b.name = a.name)
    ON CONFLICT DO NOTHING;

-- Versions sort as semver (numeric parts zero-padded); filled in by the application.
ALTER TABLE artifacts ADD COLUMN version_key TEXT NOT NULL DEFAULT '';
CREATE INDEX artifacts_name_version ON artifacts(name, version_key);

-- Signed checkpoints of the audit chain's head (the key is not in the database).
CREATE TABLE audit_checkpoints (
    seq         BIGINT PRIMARY KEY,
    head_hash   TEXT NOT NULL,
    signed_at   BIGINT NOT NULL,
    signature   TEXT NOT NULL
);

-- Single-use download links: a link's nonce is recorded when it is redeemed.
CREATE TABLE download_links (
    nonce       TEXT PRIMARY KEY,
    artifact_id TEXT NOT NULL,
    used_at     BIGINT NOT NULL
);
