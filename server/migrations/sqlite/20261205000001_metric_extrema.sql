-- Each series' lowest and highest value (NaN and infinities aside), kept as points arrive, for
-- the runs table's min and max columns and queries and sorts by them (`metrics_min.loss`).
-- Series written before this migration have `extrema = 0` until the server has computed
-- theirs from their chunks (in the background, once).
ALTER TABLE metric_series ADD COLUMN min_value DOUBLE PRECISION;
ALTER TABLE metric_series ADD COLUMN max_value DOUBLE PRECISION;
ALTER TABLE metric_series ADD COLUMN extrema INTEGER NOT NULL DEFAULT 0;
