-- sshfinger store on PostgreSQL, version 1 -> 2: the nodes serving the store register themselves.
-- Run inside the migration transaction; the loader then sets schema_version to 2.

CREATE TABLE nodes (
    name         text PRIMARY KEY,
    version      text NOT NULL,
    host_keys    text NOT NULL DEFAULT '',
    started_at   double precision NOT NULL,
    heartbeat_at double precision NOT NULL,
    applied_seq  bigint NOT NULL DEFAULT 0,
    lag          bigint NOT NULL DEFAULT 0
);
