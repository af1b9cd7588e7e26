-- B2: remind the buyer before the payment deadline; the timer finds due reminders here.
ALTER TABLE orders ADD COLUMN payment_reminder_at INTEGER;
CREATE INDEX orders_payment_reminder ON orders(payment_reminder_at) WHERE payment_reminder_at IS NOT NULL;
