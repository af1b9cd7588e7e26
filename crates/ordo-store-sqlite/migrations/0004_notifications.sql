-- K1: buyer notifications. The delivery log: one row per (event, channel), every
-- attempt beside it, and the worker's position in the event log.
-- (0003 is reserved for another change; versions apply by number, gaps allowed.)
CREATE TABLE notifications (
    id               INTEGER PRIMARY KEY,
    shop             TEXT NOT NULL REFERENCES shops(id),
    event_seq        INTEGER NOT NULL,
    order_id         TEXT NOT NULL,
    channel          TEXT NOT NULL,
    recipient        TEXT NOT NULL,
    template         TEXT NOT NULL,
    locale           TEXT NOT NULL,
    data             TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    sent_at          INTEGER,
    UNIQUE (event_seq, channel)
);
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notifications_by_shop ON notifications (shop, id);
CREATE INDEX notifications_by_order ON notifications (shop, order_id, id);

CREATE TABLE notification_attempts (
    id            INTEGER PRIMARY KEY,
    notification  INTEGER NOT NULL REFERENCES notifications(id),
    at            INTEGER NOT NULL,
    ok            INTEGER NOT NULL,
    detail        TEXT NOT NULL
);
CREATE INDEX notification_attempts_by_notification ON notification_attempts (notification, id);

-- The last event the worker planned. It starts at the newest event, so turning
-- notifications on never mails buyers about old orders.
CREATE TABLE notification_cursor (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq  INTEGER NOT NULL
);
INSERT INTO notification_cursor (id, last_seq) VALUES (1, (SELECT COALESCE(MAX(seq), 0) FROM events));
