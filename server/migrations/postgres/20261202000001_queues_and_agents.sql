-- Queues, agents and leases. A run waiting for an agent is `queued` with no `agent`; claiming
-- sets `agent` (who drives it) and `lease_until` (when the claim lapses unless renewed, in
-- microseconds; NULL for a local supervisor, whose liveness is its pid). An ended run holds
-- no lease. Only top-level runs are claimed: a pipeline's children are driven by the
-- pipeline's controller.
ALTER TABLE runs ADD COLUMN queue TEXT;
ALTER TABLE runs ADD COLUMN priority BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN agent TEXT;
ALTER TABLE runs ADD COLUMN lease_until BIGINT;
-- What claiming walks: a queue's waiting runs, best priority first, oldest first.
CREATE INDEX runs_waiting ON runs (queue, priority DESC, created_at, id)
    WHERE status = 'queued' AND agent IS NULL AND pipeline_uuid IS NULL;
-- What a queue's concurrency counts, and what leases renew and expire.
CREATE INDEX runs_held ON runs (queue) WHERE agent IS NOT NULL AND pipeline_uuid IS NULL;
CREATE INDEX runs_leases ON runs (agent, lease_until) WHERE agent IS NOT NULL;

CREATE TABLE queues (
    name        TEXT PRIMARY KEY,
    concurrency BIGINT,
    priority    BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
INSERT INTO queues (name, concurrency, priority, created_at, updated_at) VALUES ('default', NULL, 0, 0, 0);

CREATE TABLE agents (
    name       TEXT PRIMARY KEY,
    instance   TEXT NOT NULL,
    version    TEXT NOT NULL,
    executor   TEXT NOT NULL,
    queues     TEXT NOT NULL,
    capacity   BIGINT NOT NULL,
    running    BIGINT NOT NULL DEFAULT 0,
    host       TEXT,
    state      TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL
);
