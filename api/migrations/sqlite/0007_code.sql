-- Code snapshots (#15): the SHA-256 of the project tar a request's jobs start from (a
-- blob in the artifact store, uploaded before the request).
ALTER TABLE requests ADD COLUMN code_sha256 TEXT;
