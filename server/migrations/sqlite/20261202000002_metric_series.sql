-- One row per series of a run: the writers of one series take its row first (an upsert), so
-- concurrent batches into one series append one after the other instead of racing for its last
-- chunk, and the series' last point (the highest step, then the latest time) is kept here and
-- folded into the run's outputs without reading them back.
CREATE TABLE metric_series (
    run_id     BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    last_step  BIGINT NOT NULL,
    last_ts    BIGINT NOT NULL,
    last_value REAL NOT NULL,
    PRIMARY KEY (run_id, name)
);
