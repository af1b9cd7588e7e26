-- One row that every group-commit batch moves forward as it commits: how many
-- batches have committed, and which writer (a random number per open store) and
-- which of its batches was the last. A batch decided on a read snapshot is written
-- only if no other batch committed since that snapshot but the one it was decided
-- on top of, so two processes sharing the file never overwrite each other's
-- decisions (src/pipeline.rs).
CREATE TABLE batch_epoch (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n INTEGER NOT NULL,
    writer INTEGER NOT NULL,
    batch INTEGER NOT NULL
);
INSERT INTO batch_epoch (id, n, writer, batch) VALUES (1, 0, 0, 0);
