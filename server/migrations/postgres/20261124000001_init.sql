-- The store's schema. Times are microseconds since the Unix epoch (UTC); JSON is stored as
-- text; uuids are 32 hex characters, as upstream writes them.

CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    email         TEXT,
    password_hash TEXT,
    is_superuser  BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT NOT NULL
);

CREATE TABLE tokens (
    id           BIGSERIAL PRIMARY KEY,
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
    id          BIGSERIAL PRIMARY KEY,
    uuid        TEXT NOT NULL UNIQUE,
    owner       TEXT NOT NULL,
    name        TEXT NOT NULL,
    user_id     BIGINT REFERENCES users (id) ON DELETE SET NULL,
    description TEXT,
    tags        TEXT NOT NULL DEFAULT '[]',
    is_public   BOOLEAN NOT NULL DEFAULT FALSE,
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
    id            BIGSERIAL PRIMARY KEY,
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
    is_managed    BOOLEAN NOT NULL DEFAULT TRUE,
    is_approved   BOOLEAN NOT NULL DEFAULT TRUE,
    pending       TEXT,
    original_uuid TEXT,
    cloning_kind  TEXT,
    pipeline_uuid TEXT,
    pipeline_kind TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    started_at    BIGINT,
    finished_at   BIGINT,
    wait_time     DOUBLE PRECISION,
    duration      DOUBLE PRECISION
);
CREATE INDEX runs_project_created ON runs (project_id, created_at, id);
CREATE INDEX runs_project_updated ON runs (project_id, updated_at, id);
CREATE INDEX runs_project_status ON runs (project_id, status);
CREATE INDEX runs_pipeline ON runs (pipeline_uuid);
CREATE INDEX runs_status ON runs (status);

CREATE TABLE statuses (
    id         BIGSERIAL PRIMARY KEY,
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
-- `overview` holds, for each group of 64 points, its first, lowest, highest and last points
-- (NULL when the chunk's points are not in step order): downsampled reads of long series use it.
CREATE TABLE metric_chunks (
    run_id   BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name     TEXT NOT NULL,
    seq      BIGINT NOT NULL,
    n        BIGINT NOT NULL,
    step_min BIGINT,
    step_max BIGINT,
    ts_min   BIGINT NOT NULL,
    ts_max   BIGINT NOT NULL,
    data     BYTEA NOT NULL,
    overview BYTEA,
    PRIMARY KEY (run_id, name, seq)
);
ALTER TABLE metric_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
ALTER TABLE metric_chunks ALTER COLUMN overview SET STORAGE EXTERNAL;

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
    is_input   BOOLEAN NOT NULL DEFAULT FALSE,
    connection TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (run_id, name)
);
