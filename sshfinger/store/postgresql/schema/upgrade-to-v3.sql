-- sshfinger store on PostgreSQL, version 2 -> 3: the account fields SQLite's schema v4 and v5 added (the
-- fediverse alias and the plan's signature).  Run inside the migration transaction; the loader then sets
-- schema_version to 3.

ALTER TABLE accounts ADD COLUMN fediverse text NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN plan_signature text NOT NULL DEFAULT '';
