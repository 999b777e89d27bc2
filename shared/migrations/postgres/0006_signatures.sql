-- Arca's signature of each approved artifact: ECDSA P-256 over the artifact's SHA-256,
-- with the certificate chain it was made under. Replaced when an artifact is re-signed.
CREATE TABLE signatures (
    artifact_id       TEXT PRIMARY KEY REFERENCES artifacts(id),
    algorithm         TEXT NOT NULL,
    signature         TEXT NOT NULL,
    certificate_chain TEXT NOT NULL,
    digest            TEXT NOT NULL,
    signed_at         BIGINT NOT NULL
);
