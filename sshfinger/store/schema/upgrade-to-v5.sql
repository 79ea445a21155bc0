-- sshfinger store, version 4 -> 5: a plan's SSH signature (ssh-keygen -Y sign -n sshfinger-plan), or ''.
-- Run inside the migration transaction; the loader then sets version to 5.

ALTER TABLE accounts ADD COLUMN plan_signature TEXT NOT NULL DEFAULT '';
