-- Each output row names its own object in the artifact store (`outputs/<uuid>`), so a
-- cleanup that deletes a row's object never takes bytes another row still needs. Rows
-- written before this have none: their bytes are at `blobs/ab/<sha256>`, never deleted.
ALTER TABLE job_outputs ADD COLUMN object TEXT;
