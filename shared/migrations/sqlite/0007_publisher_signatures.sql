-- Signatures publishers attached, with the verdict Arca reached when they were submitted.
CREATE TABLE publisher_signatures (
    id                TEXT PRIMARY KEY,
    artifact_id       TEXT NOT NULL REFERENCES artifacts(id),
    signature         TEXT NOT NULL,
    certificate_chain TEXT NOT NULL,
    result            TEXT NOT NULL,
    reason            TEXT NOT NULL,
    subject           TEXT,
    submitted_by      TEXT NOT NULL,
    verified_at       BIGINT NOT NULL
);
CREATE INDEX publisher_signatures_artifact ON publisher_signatures(artifact_id);
