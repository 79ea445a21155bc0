-- sshfinger store on PostgreSQL, version 3 -> 4: the change log is bounded by size as well as by count
-- (--audit-max-bytes).  Each entry records the bytes it counts (sshfinger.store.limits.change_size: its texts in
-- UTF-8 plus 64), and the feed row their sum.  Run inside the migration transaction; the loader then sets
-- schema_version to 4.

ALTER TABLE change_log ADD COLUMN size bigint NOT NULL DEFAULT 0;
UPDATE change_log SET size = 64 + octet_length(coalesce(old, '')) + octet_length(coalesce(new, ''))
    + octet_length(login) + octet_length(field) + octet_length(actor_login) + octet_length(actor_peer);
ALTER TABLE feed ADD COLUMN bytes bigint NOT NULL DEFAULT 0;
UPDATE feed SET bytes = (SELECT coalesce(sum(size), 0) FROM change_log);
