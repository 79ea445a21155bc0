-- sshfinger store on PostgreSQL, schema version 1: accounts (keys and password hash with them), shell history,
-- the change log every node follows, and the feed's head.  Run inside the migration transaction; the loader then
-- sets schema_version to 1.  Statements end with ';' at the end of a line.

CREATE TABLE schema_version (
    version integer NOT NULL
);
INSERT INTO schema_version (version) VALUES (1);

CREATE TABLE accounts (
    login         text PRIMARY KEY,
    real_name     text NOT NULL DEFAULT '',
    status        text NOT NULL DEFAULT '',
    plan          text NOT NULL DEFAULT '',
    office        text NOT NULL DEFAULT '',
    phone         text NOT NULL DEFAULT '',
    hidden        boolean NOT NULL DEFAULT false,
    role          text NOT NULL DEFAULT 'user',
    keys          text[] NOT NULL DEFAULT '{}',
    updated_at    double precision NOT NULL DEFAULT 0,
    updated_by    text NOT NULL DEFAULT '',
    password_hash text
);

CREATE TABLE history (
    id    bigserial PRIMARY KEY,
    login text NOT NULL,
    line  text NOT NULL
);
CREATE INDEX history_login ON history (login, id);

-- One row: the sequence number of the newest change (seq order is commit order: writers hold an advisory
-- transaction lock) and the newest one pruned (a follower behind it must reload).
CREATE TABLE feed (
    head           bigint NOT NULL,
    pruned_through bigint NOT NULL
);
INSERT INTO feed (head, pruned_through) VALUES (0, 0);

CREATE TABLE change_log (
    seq           bigint PRIMARY KEY,
    at            double precision NOT NULL,
    actor_login   text NOT NULL,
    actor_channel text NOT NULL,
    actor_peer    text NOT NULL DEFAULT '',
    login         text NOT NULL,
    action        text NOT NULL,
    field         text NOT NULL DEFAULT '',
    old           text,
    new           text
);
CREATE INDEX change_log_login ON change_log (login, seq);
