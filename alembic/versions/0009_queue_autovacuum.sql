-- 0009 queue autovacuum: payment_outbox_pending is vacuumed once 10,000 rows have died, however
-- long the queue is (ADR 0042).
--
-- Every job leaves two dead row versions in the queue (the claim rewrites the row, the terminal
-- completion deletes it) and dead index entries where the next claims start: at the head of the
-- due index, and in the expired range of the lease index once the lease time has passed. Until
-- VACUUM removes them every claim reads past them (the benchmark's W5: buffers and p99 per claim
-- grow with the dead tuples). The server default triggers a vacuum at 50 + 20% of the table's
-- rows: harmless while the queue is short, but a backlog of 1,000,000 jobs would let 200,000 dead
-- rows pile up in front of the claims before the first vacuum. A fixed threshold and no scale
-- factor keep the dead rows a claim can meet bounded by what one autovacuum cycle
-- (autovacuum_naptime, a server setting) accumulates, whatever the backlog.
--
-- Storage parameters only: no rewrite, and ALTER TABLE ... SET takes a SHARE UPDATE EXCLUSIVE
-- lock, which does not block the queue's readers or writers.
ALTER TABLE public.payment_outbox_pending SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 10000
);
