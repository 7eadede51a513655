-- Outputs (#15): the files a job's attempt uploaded. Rows of an attempt are visible only
-- once the job succeeded under that attempt's token (jobs.fencing_token): a job that died
-- mid-upload, or was taken over, never shows half its files.
CREATE TABLE job_outputs (
    job_id      TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    token       INTEGER  NOT NULL,
    path        TEXT    NOT NULL,
    level       TEXT    NOT NULL,
    size        INTEGER  NOT NULL,
    sha256      TEXT    NOT NULL,
    csv_rows    INTEGER,
    csv_columns INTEGER,
    -- why a moderately_sensitive file failed the release checks (kept highly_sensitive)
    withheld    TEXT,
    created_us  INTEGER  NOT NULL,
    PRIMARY KEY (job_id, token, path)
);
-- blobs are content-addressed: the cleanup asks whether any row still names one
CREATE INDEX job_outputs_by_sha ON job_outputs (sha256);
