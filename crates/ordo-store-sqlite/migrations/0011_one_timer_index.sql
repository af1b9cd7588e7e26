-- An order awaiting payment has two timers: the reminder, which always comes first
-- (ordo_core::catalog::payment_reminder_at) and is cleared once sent, and the
-- deadline. Both are cleared when the order leaves pending payment. One index on
-- whichever of the two is next serves both timer queries (reads.rs): one B-tree
-- insert fewer for every order placed.
DROP INDEX orders_payment_due;
DROP INDEX orders_payment_reminder;
CREATE INDEX orders_next_timer ON orders(coalesce(payment_reminder_at, payment_due_at))
    WHERE payment_due_at IS NOT NULL;
