-- Runs whose files are still to remove: written in the transaction that deletes the runs, and
-- removed once the files are gone (from the artifacts root and the artifacts store). A removal
-- that fails (the store out of reach) stays here and is tried again, so a deleted run leaves
-- no objects behind in a bucket for good.
CREATE TABLE file_removals (
    uuid        TEXT PRIMARY KEY,
    created_at  BIGINT NOT NULL,
    tries       INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    next_at     BIGINT NOT NULL
);
