-- Artifacts and their lifecycle. `name@version` is immutable.
CREATE TABLE artifacts (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    version         TEXT NOT NULL,
    filename        TEXT NOT NULL,
    size            BIGINT NOT NULL,
    sha256          TEXT NOT NULL,
    labels          TEXT NOT NULL,
    description     TEXT NOT NULL,
    status          TEXT NOT NULL,
    status_reason   TEXT,
    owner_id        TEXT NOT NULL REFERENCES users(id),
    -- Data key wrapped by the master key; NULL once crypto-shredded.
    wrapped_key     TEXT,
    -- The upload URL in force: a token is accepted only while it matches.
    upload_nonce    TEXT,
    received_sha256 TEXT,
    received_size   BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    deleted_at      BIGINT,
    UNIQUE (name, version)
);
CREATE INDEX artifacts_status ON artifacts(status);

-- Durable outbox of lifecycle events (CloudEvents), delivered at least once.
CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    event_type      TEXT NOT NULL,
    artifact_id     TEXT NOT NULL,
    payload         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    delivered_at    BIGINT,
    last_error      TEXT
);
CREATE INDEX outbox_pending ON outbox(delivered_at, next_attempt_at);
