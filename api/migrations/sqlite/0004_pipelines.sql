-- Pipelines (#14): a request runs some actions of a project file in a workspace; its jobs
-- wait (WAITING_ON_DEPENDENCIES, not on the queue) until every job they need succeeded.
CREATE TABLE requests (
    id          TEXT    NOT NULL PRIMARY KEY,
    workspace   TEXT    NOT NULL,
    file_name   TEXT    NOT NULL,
    -- the requested action names, a JSON list
    requested   TEXT    NOT NULL,
    force_run   BOOLEAN NOT NULL,
    created_us  INTEGER NOT NULL,
    -- the project file as submitted, so a request can be read back and re-created
    project     TEXT    NOT NULL
);
CREATE INDEX requests_by_created ON requests (created_us DESC, id DESC);

ALTER TABLE jobs ADD COLUMN request_id TEXT REFERENCES requests (id);
ALTER TABLE jobs ADD COLUMN workspace TEXT;
-- the project's action (a matrix action's expanded name) the job runs
ALTER TABLE jobs ADD COLUMN pipeline_action TEXT;
-- when the job's last dependency succeeded (the reconciler's grace runs from here)
ALTER TABLE jobs ADD COLUMN ready_us INTEGER;
CREATE INDEX jobs_by_workspace ON jobs (workspace, pipeline_action, created_us DESC)
    WHERE workspace IS NOT NULL;
CREATE INDEX jobs_by_request ON jobs (request_id, created_us) WHERE request_id IS NOT NULL;

-- job_id runs only after needs_id succeeded.
CREATE TABLE job_needs (
    job_id   TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    needs_id TEXT NOT NULL,
    PRIMARY KEY (job_id, needs_id)
) WITHOUT ROWID;
CREATE INDEX job_needs_by_need ON job_needs (needs_id);
-- What waits on dependencies (the reconciler's sweep scans it).
CREATE INDEX jobs_waiting ON jobs (created_us) WHERE status_code = 'WAITING_ON_DEPENDENCIES';

-- One row per workspace: requests on one workspace take its row, so they are decided one
-- after the other (a row lock on PostgreSQL; SQLite has one writer anyway).
CREATE TABLE workspaces (
    name       TEXT    NOT NULL PRIMARY KEY,
    requests   INTEGER NOT NULL,
    created_us INTEGER NOT NULL
);
