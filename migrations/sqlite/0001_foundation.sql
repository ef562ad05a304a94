-- Foundation: apps, their domains, admin keys, instance bootstrap marker.
-- Timestamps are Unix epoch milliseconds (INTEGER) on both backends: one encoding, exact
-- round trips, and ordering that never depends on a text format.

CREATE TABLE apps (
    id          TEXT PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE app_domains (
    id          TEXT PRIMARY KEY,
    app_id      TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    host        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);
CREATE INDEX app_domains_by_app ON app_domains (app_id, host);

CREATE TABLE admin_keys (
    id            TEXT PRIMARY KEY,
    secret_hash   BLOB NOT NULL,
    capabilities  TEXT NOT NULL,
    app_id        TEXT REFERENCES apps (id) ON DELETE CASCADE,
    label         TEXT NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL
);

CREATE TABLE instance_meta (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
