-- A request's idempotency key (#14: a distribution's tick submits one request per tick,
-- whichever distributor leads): at most one request per key.
ALTER TABLE requests ADD COLUMN idempotency_key TEXT;
CREATE UNIQUE INDEX requests_by_key ON requests (idempotency_key) WHERE idempotency_key IS NOT NULL;
