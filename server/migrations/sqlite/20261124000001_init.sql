-- The store's schema. Times are microseconds since the Unix epoch (UTC); JSON is stored as
-- text; uuids are 32 hex characters, as upstream writes them.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT NOT NULL UNIQUE,
    email         TEXT,
    password_hash TEXT,
    is_superuser  INTEGER NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL
);

CREATE TABLE tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid         TEXT NOT NULL UNIQUE,
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash   TEXT NOT NULL UNIQUE,
    name         TEXT,
    scope        TEXT NOT NULL,
    run_uuid     TEXT,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    last_used_at BIGINT
);

CREATE TABLE projects (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid        TEXT NOT NULL UNIQUE,
    owner       TEXT NOT NULL,
    name        TEXT NOT NULL,
    user_id     BIGINT REFERENCES users (id) ON DELETE SET NULL,
    description TEXT,
    tags        TEXT NOT NULL DEFAULT '[]',
    is_public   INTEGER NOT NULL DEFAULT 0,
    readme      TEXT,
    settings    TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (owner, name)
);

CREATE TABLE project_members (
    project_id BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT NOT NULL,
    PRIMARY KEY (project_id, user_id)
);

CREATE TABLE runs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid          TEXT NOT NULL UNIQUE,
    project_id    BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id       BIGINT REFERENCES users (id) ON DELETE SET NULL,
    name          TEXT,
    description   TEXT,
    tags          TEXT NOT NULL DEFAULT '[]',
    kind          TEXT,
    runtime       TEXT,
    status        TEXT NOT NULL,
    content       TEXT,
    raw_content   TEXT,
    inputs        TEXT,
    outputs       TEXT,
    meta_info     TEXT,
    managed_by    TEXT,
    is_managed    INTEGER NOT NULL DEFAULT 1,
    is_approved   INTEGER NOT NULL DEFAULT 1,
    pending       TEXT,
    original_uuid TEXT,
    cloning_kind  TEXT,
    pipeline_uuid TEXT,
    pipeline_kind TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    started_at    BIGINT,
    finished_at   BIGINT,
    wait_time     REAL,
    duration      REAL
);
CREATE INDEX runs_project_created ON runs (project_id, created_at, id);
CREATE INDEX runs_project_updated ON runs (project_id, updated_at, id);
CREATE INDEX runs_project_status ON runs (project_id, status);
CREATE INDEX runs_pipeline ON runs (pipeline_uuid);
CREATE INDEX runs_status ON runs (status);

CREATE TABLE statuses (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id     BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    type       TEXT NOT NULL,
    status     TEXT NOT NULL,
    reason     TEXT,
    message    TEXT,
    meta_info  TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX statuses_run ON statuses (run_id, id);

-- Metrics are kept as chunks of a series: n points of (step, timestamp, value), 24 bytes each.
CREATE TABLE metric_chunks (
    run_id   BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name     TEXT NOT NULL,
    seq      BIGINT NOT NULL,
    n        BIGINT NOT NULL,
    step_min BIGINT,
    step_max BIGINT,
    ts_min   BIGINT NOT NULL,
    ts_max   BIGINT NOT NULL,
    data     BLOB NOT NULL,
    overview BLOB,
    PRIMARY KEY (run_id, name, seq)
);

-- Batches already applied, so that a retried batch is not applied twice.
CREATE TABLE metric_batches (
    run_id     BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    batch_id   TEXT NOT NULL,
    points     BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (run_id, batch_id)
);

CREATE TABLE run_artifacts (
    run_id     BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    kind       TEXT,
    path       TEXT,
    summary    TEXT,
    meta_info  TEXT,
    is_input   INTEGER NOT NULL DEFAULT 0,
    connection TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (run_id, name)
);
