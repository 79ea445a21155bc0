-- sshfinger store, version 2 -> 3: the change feed's horizon and the audit trail's size.
-- Run inside the migration transaction; the loader then sets version to 3.

-- The bytes each audit entry counts against --audit-max-bytes (as sshfinger.store.limits.change_size counts).
ALTER TABLE changes ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
UPDATE changes SET size = 64 + length(CAST(coalesce(old, '') AS BLOB)) + length(CAST(coalesce(new, '') AS BLOB))
    + length(CAST(login AS BLOB)) + length(CAST(field AS BLOB)) + length(CAST(actor_login AS BLOB))
    + length(CAST(actor_peer AS BLOB));

-- pruned_through: every change up to this id was pruned, so a follower that last read an id below it must
-- reload (ids can have gaps, so the horizon is recorded, not inferred).  Version 2 pruned contiguous ranges from
-- the oldest, so here, once, the oldest id kept (or the last id given out) tells where it stopped.
-- bytes: the sum of size over the changes kept.
-- keep, max_bytes: the retention the server was started with (--audit-keep, --audit-max-bytes), which the offline
-- tool then applies too; NULL: the defaults.
CREATE TABLE feed_state (
    pruned_through INTEGER NOT NULL,
    bytes          INTEGER NOT NULL,
    keep           INTEGER,
    max_bytes      INTEGER
);
INSERT INTO feed_state (pruned_through, bytes) VALUES (
    coalesce((SELECT min(id) - 1 FROM changes), (SELECT seq FROM sqlite_sequence WHERE name = 'changes'), 0),
    (SELECT coalesce(sum(size), 0) FROM changes)
);
