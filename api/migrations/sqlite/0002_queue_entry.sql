-- The queue entry a job's holder claimed through (#11): a running job may be taken over
-- only through a re-take of this same entry, which proves the old holder's marker is gone.
ALTER TABLE jobs ADD COLUMN queue_entry TEXT;
