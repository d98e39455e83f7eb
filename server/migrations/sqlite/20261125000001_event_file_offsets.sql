-- How far the server has ingested each metric event file of a run (`events/metric/<name>.plx`
-- in its artifacts store): advanced in the transaction that stores the points, only from the
-- offset the reader started at, so two readers never store the same lines.
CREATE TABLE event_file_offsets (
    run_id  BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name    TEXT NOT NULL,
    read_to BIGINT NOT NULL,
    PRIMARY KEY (run_id, name)
);
