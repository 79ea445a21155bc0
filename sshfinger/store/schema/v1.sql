-- sshfinger store, schema version 1: one row per account.
-- Statements end with ';' at the end of a line (the loader splits on complete statements).

CREATE TABLE version (
    version INTEGER NOT NULL
);
INSERT INTO version (version) VALUES (1);

CREATE TABLE accounts (
    login      TEXT PRIMARY KEY NOT NULL,
    real_name  TEXT NOT NULL DEFAULT '',
    status     TEXT NOT NULL DEFAULT '',
    plan       TEXT NOT NULL DEFAULT '',
    office     TEXT NOT NULL DEFAULT '',
    phone      TEXT NOT NULL DEFAULT '',
    hidden     INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL DEFAULT 0,
    updated_by TEXT NOT NULL DEFAULT ''
);
