-- S3 store: the multipart upload in progress for an artifact (NULL for single PUTs and local files).
ALTER TABLE artifacts ADD COLUMN upload_id TEXT;
