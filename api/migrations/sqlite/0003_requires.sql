-- Tags an executor must carry to run the job (#13), sorted, separated by spaces; '' for
-- none. With the action they make the job's route, which its queue entry's name carries.
ALTER TABLE jobs ADD COLUMN requires TEXT NOT NULL DEFAULT '';
