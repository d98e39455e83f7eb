-- Connections: the named things operations and notifications use (notifiers, git, registries,
-- buckets, volumes, host paths). `spec` is the non-secret part (JSON), which templates and
-- readers see. `secret` is never a secret's value: it names where the value is read from when
-- it is needed (JSON `{"env": "NAME"}` or `{"file": "/path"}`), in the process that uses it.
CREATE TABLE connections (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL,
    description TEXT,
    tags        TEXT NOT NULL DEFAULT '[]',
    spec        TEXT NOT NULL DEFAULT '{}',
    secret      TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- The outbox: the side effects of a run's end (notifications and hooks), written in the
-- transaction that records the status they fire on, then delivered by whichever process holds
-- the row's lease (a server, an agent, a run's supervisor). `key` is unique: a run's end fires
-- each of its entries once. A delivery is marked in the transaction that records its reply.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id          BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    key             TEXT NOT NULL UNIQUE,
    source          TEXT NOT NULL,
    trigger         TEXT NOT NULL,
    status          TEXT NOT NULL,
    connection      TEXT,
    entry           TEXT NOT NULL,
    state           TEXT NOT NULL,
    tries           BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT,
    response_code   BIGINT,
    next_at         BIGINT NOT NULL,
    holder          TEXT,
    lease_until     BIGINT,
    hook_run        TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    delivered_at    BIGINT
);
CREATE INDEX outbox_due ON outbox (state, next_at);
CREATE INDEX outbox_run ON outbox (run_id, id);
