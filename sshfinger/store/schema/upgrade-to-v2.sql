-- sshfinger store, version 1 -> 2: roles, SSH keys, shell history and the audit trail of changes.
-- Run inside the migration transaction; the loader then sets version to 2.

ALTER TABLE accounts ADD COLUMN role TEXT NOT NULL DEFAULT 'user';

CREATE TABLE account_keys (
    login    TEXT NOT NULL REFERENCES accounts (login) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    line     TEXT NOT NULL,
    PRIMARY KEY (login, position)
);

CREATE TABLE history (
    login TEXT NOT NULL,
    id    INTEGER PRIMARY KEY AUTOINCREMENT,
    line  TEXT NOT NULL
);
CREATE INDEX history_login ON history (login, id);

CREATE TABLE changes (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    at            REAL NOT NULL,
    actor_login   TEXT NOT NULL,
    actor_channel TEXT NOT NULL,
    actor_peer    TEXT NOT NULL DEFAULT '',
    login         TEXT NOT NULL,
    action        TEXT NOT NULL,
    field         TEXT NOT NULL DEFAULT '',
    old           TEXT,
    new           TEXT
);
CREATE INDEX changes_login ON changes (login, id);
