-- Each run of a job (#17): who ran it, from when to when, how it ended. Kept by a trigger
-- on the jobs table, so every path that claims, re-claims, releases or ends a job (the
-- API's handlers, the reconciler, cancel and kill) records it alike.
CREATE TABLE job_attempts (
    job_id     TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt    BIGINT  NOT NULL,
    executor   TEXT,
    token      BIGINT,
    started_us BIGINT  NOT NULL,
    ended_us   BIGINT,
    outcome    TEXT,
    message    TEXT,
    PRIMARY KEY (job_id, attempt)
);

CREATE FUNCTION drover_job_attempts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.attempts > OLD.attempts THEN
        -- A claim: the run before it, if still open, was taken over; this one starts.
        UPDATE job_attempts
           SET ended_us = NEW.started_us, outcome = 'TAKEN_OVER',
               message = 'its queue entry was taken again: the holder had vanished'
         WHERE job_id = NEW.id AND ended_us IS NULL;
        INSERT INTO job_attempts (job_id, attempt, executor, token, started_us)
        VALUES (NEW.id, NEW.attempts, NEW.executor, NEW.fencing_token, NEW.started_us)
        ON CONFLICT (job_id, attempt) DO UPDATE
           SET executor = EXCLUDED.executor, token = EXCLUDED.token,
               started_us = EXCLUDED.started_us, ended_us = NULL, outcome = NULL, message = NULL;
    ELSIF OLD.state = 'RUNNING' AND NEW.state <> 'RUNNING' THEN
        -- Leaving RUNNING: the open run ends with the job's new code and message.
        UPDATE job_attempts
           SET ended_us = COALESCE(NEW.finished_us,
                                   (extract(epoch FROM clock_timestamp()) * 1000000)::bigint),
               outcome = NEW.status_code, message = NEW.status_message
         WHERE job_id = NEW.id AND ended_us IS NULL;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER job_attempts AFTER UPDATE OF state, attempts ON jobs
    FOR EACH ROW EXECUTE FUNCTION drover_job_attempts();
