-- One row that every group-commit batch, and every other write to a table batches
-- read, moves forward as it commits: how many have committed, and which writer (a
-- random number per open store; 0 for writes that are not batches) and which of
-- its batches was the last. A batch decided on a read snapshot is written only if
-- nothing committed since that snapshot but the batch it was decided on top of, so
-- two processes sharing the file never overwrite each other (src/pipeline.rs).
CREATE TABLE batch_epoch (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n INTEGER NOT NULL,
    writer INTEGER NOT NULL,
    batch INTEGER NOT NULL
);
INSERT INTO batch_epoch (id, n, writer, batch) VALUES (1, 0, 0, 0);
