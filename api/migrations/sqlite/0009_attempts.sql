-- Each run of a job (#17): who ran it, from when to when, how it ended. Kept by triggers
-- on the jobs table, so every path that claims, re-claims, releases or ends a job (the
-- API's handlers, the reconciler, cancel and kill) records it alike.
CREATE TABLE job_attempts (
    job_id     TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt    INTEGER NOT NULL,
    executor   TEXT,
    token      INTEGER,
    started_us INTEGER NOT NULL,
    ended_us   INTEGER,
    outcome    TEXT,
    message    TEXT,
    PRIMARY KEY (job_id, attempt)
) WITHOUT ROWID;

-- A claim (attempts + 1): the run before it, if still open, was taken over; this one starts.
CREATE TRIGGER job_attempt_starts AFTER UPDATE OF attempts ON jobs
WHEN NEW.attempts > OLD.attempts
BEGIN
    UPDATE job_attempts
       SET ended_us = NEW.started_us, outcome = 'TAKEN_OVER',
           message = 'its queue entry was taken again: the holder had vanished'
     WHERE job_id = NEW.id AND ended_us IS NULL;
    INSERT OR REPLACE INTO job_attempts (job_id, attempt, executor, token, started_us)
    VALUES (NEW.id, NEW.attempts, NEW.executor, NEW.fencing_token, NEW.started_us);
END;

-- Leaving RUNNING (a result, a release back to the queue, a cancel or kill): the open run
-- ends with the job's new code and message.
CREATE TRIGGER job_attempt_ends AFTER UPDATE OF state ON jobs
WHEN OLD.state = 'RUNNING' AND NEW.state <> 'RUNNING'
BEGIN
    UPDATE job_attempts
       SET ended_us = COALESCE(NEW.finished_us,
                               CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)),
           outcome = NEW.status_code, message = NEW.status_message
     WHERE job_id = NEW.id AND ended_us IS NULL;
END;
