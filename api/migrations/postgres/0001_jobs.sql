-- drover's job records (PostgreSQL). Times are microseconds since the Unix epoch (UTC):
-- exact ordering and cursors on both databases; the API writes them as RFC 3339.
-- Ids use the "C" collation so a prefix is a plain index range.
CREATE TABLE jobs (
    id                TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    action            TEXT    NOT NULL,
    params            TEXT    NOT NULL,
    priority          BIGINT  NOT NULL,
    state             TEXT    NOT NULL,
    status_code       TEXT    NOT NULL,
    status_message    TEXT    NOT NULL,
    progress          BIGINT  NOT NULL DEFAULT 0,
    exit_code         BIGINT,
    attempts          BIGINT  NOT NULL DEFAULT 0,
    max_attempts      BIGINT  NOT NULL,
    timeout_secs      BIGINT  NOT NULL,
    executor          TEXT,
    fencing_token     BIGINT,
    last_heartbeat_us BIGINT,
    created_us        BIGINT  NOT NULL,
    started_us        BIGINT,
    finished_us       BIGINT,
    idempotency_key   TEXT    UNIQUE,
    enqueued          BOOLEAN NOT NULL DEFAULT FALSE,
    retry_of          TEXT COLLATE "C" REFERENCES jobs (id),
    cancel_requested  BOOLEAN NOT NULL DEFAULT FALSE,
    kill_requested    BOOLEAN NOT NULL DEFAULT FALSE,
    log_seq           BIGINT  NOT NULL DEFAULT 0,
    log_bytes         BIGINT  NOT NULL DEFAULT 0,
    log_truncated     BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE INDEX jobs_by_created ON jobs (created_us DESC, id DESC);
CREATE INDEX jobs_by_state ON jobs (state, created_us DESC, id DESC);
CREATE INDEX jobs_by_action ON jobs (action, created_us DESC, id DESC);
-- What the reconciler (#5) scans: records whose queue entry may be missing.
CREATE INDEX jobs_not_enqueued ON jobs (created_us) WHERE enqueued = FALSE;

CREATE TABLE job_logs (
    job_id TEXT COLLATE "C" NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq    BIGINT NOT NULL,
    stream TEXT   NOT NULL,
    line   TEXT   NOT NULL,
    PRIMARY KEY (job_id, seq)
);
