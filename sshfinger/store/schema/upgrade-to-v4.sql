-- sshfinger store, version 3 -> 4: an account's fediverse alias (an https URL, shown by /W and WebFinger).
-- Run inside the migration transaction; the loader then sets version to 4.

ALTER TABLE accounts ADD COLUMN fediverse TEXT NOT NULL DEFAULT '';
