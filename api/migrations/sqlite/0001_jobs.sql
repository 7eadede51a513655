-- drover's job records (SQLite). Times are microseconds since the Unix epoch (UTC):
-- exact ordering and cursors on both databases; the API writes them as RFC 3339.
CREATE TABLE jobs (
    id                TEXT    NOT NULL PRIMARY KEY,
    action            TEXT    NOT NULL,
    params            TEXT    NOT NULL,
    priority          INTEGER NOT NULL,
    state             TEXT    NOT NULL,
    status_code       TEXT    NOT NULL,
    status_message    TEXT    NOT NULL,
    progress          INTEGER NOT NULL DEFAULT 0,
    exit_code         INTEGER,
    attempts          INTEGER NOT NULL DEFAULT 0,
    max_attempts      INTEGER NOT NULL,
    timeout_secs      INTEGER NOT NULL,
    executor          TEXT,
    fencing_token     INTEGER,
    last_heartbeat_us INTEGER,
    created_us        INTEGER NOT NULL,
    started_us        INTEGER,
    finished_us       INTEGER,
    idempotency_key   TEXT    UNIQUE,
    enqueued          BOOLEAN NOT NULL DEFAULT FALSE,
    retry_of          TEXT    REFERENCES jobs (id),
    cancel_requested  BOOLEAN NOT NULL DEFAULT FALSE,
    kill_requested    BOOLEAN NOT NULL DEFAULT FALSE,
    log_seq           INTEGER NOT NULL DEFAULT 0,
    log_bytes         INTEGER NOT NULL DEFAULT 0,
    log_truncated     BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE INDEX jobs_by_created ON jobs (created_us DESC, id DESC);
CREATE INDEX jobs_by_state ON jobs (state, created_us DESC, id DESC);
CREATE INDEX jobs_by_action ON jobs (action, created_us DESC, id DESC);
-- What the reconciler (#5) scans: records whose queue entry may be missing.
CREATE INDEX jobs_not_enqueued ON jobs (created_us) WHERE enqueued = FALSE;

CREATE TABLE job_logs (
    job_id TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq    INTEGER NOT NULL,
    stream TEXT    NOT NULL,
    line   TEXT    NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
