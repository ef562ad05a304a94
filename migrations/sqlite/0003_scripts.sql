-- Scripts, routes, the tenant data the script SDK reaches (kv, docs, files, env), the
-- dispatcher's bookkeeping (dead letters, cron fires) and invocation logs.

-- A script name points at its active version; versions are immutable.
CREATE TABLE scripts (
    app_id          TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    active_version  BIGINT NOT NULL,
    latest_version  BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (app_id, name)
);

CREATE TABLE script_versions (
    app_id      TEXT NOT NULL,
    name        TEXT NOT NULL,
    version     BIGINT NOT NULL,
    source      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (app_id, name, version),
    FOREIGN KEY (app_id, name) REFERENCES scripts (app_id, name) ON DELETE CASCADE
);

CREATE TABLE routes (
    id          TEXT PRIMARY KEY,
    app_id      TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    method      TEXT NOT NULL,
    path        TEXT NOT NULL,
    script      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (app_id, method, path)
);

-- Per-app runtime settings: script limit overrides (JSON) and concurrent runs.
CREATE TABLE app_runtime (
    app_id           TEXT PRIMARY KEY REFERENCES apps (id) ON DELETE CASCADE,
    limits           TEXT NOT NULL DEFAULT '{}',
    max_concurrency  INTEGER NOT NULL,
    updated_at       BIGINT NOT NULL
);

CREATE TABLE app_env (
    app_id      TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    value       TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (app_id, name)
);

CREATE TABLE kv (
    app_id      TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    expires_at  BIGINT,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (app_id, key)
);
CREATE INDEX kv_expiring ON kv (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE docs (
    app_id      TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    collection  TEXT NOT NULL,
    id          TEXT NOT NULL,
    doc         TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (app_id, collection, id)
);

-- File metadata; the bytes live on disk under the data dir, in `blob`.
CREATE TABLE files (
    app_id      TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    path        TEXT NOT NULL,
    blob        TEXT NOT NULL,
    size        BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (app_id, path)
);

-- Cron: the newest scheduled time already turned into deliveries, per trigger.
ALTER TABLE triggers ADD COLUMN cron_cursor BIGINT;
CREATE INDEX triggers_cron ON triggers (kind) WHERE kind = 'cron';

-- Each scheduled time of a cron trigger fires once per cluster.
CREATE TABLE cron_fires (
    trigger_id     TEXT NOT NULL REFERENCES triggers (id) ON DELETE CASCADE,
    scheduled_for  BIGINT NOT NULL,
    PRIMARY KEY (trigger_id, scheduled_for)
);

-- A claimed delivery's lease is its next_attempt_at: an expired lease makes it due again.
CREATE INDEX outbox_due_by_app ON outbox (app_id, next_attempt_at);

CREATE TABLE dead_letters (
    id          TEXT PRIMARY KEY,
    app_id      TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    trigger_id  TEXT NOT NULL REFERENCES triggers (id) ON DELETE CASCADE,
    event       TEXT NOT NULL,
    attempts    INTEGER NOT NULL,
    last_error  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    replayed_at BIGINT
);
CREATE INDEX dead_letters_by_app ON dead_letters (app_id, created_at);

CREATE TABLE invocations (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id        TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    script        TEXT NOT NULL,
    version       BIGINT NOT NULL,
    source        TEXT NOT NULL,
    delivery_id   TEXT,
    started_at    BIGINT NOT NULL,
    duration_us   BIGINT NOT NULL,
    operations    BIGINT NOT NULL,
    outcome       TEXT NOT NULL,
    error         TEXT,
    logs          TEXT NOT NULL
);
CREATE INDEX invocations_by_app ON invocations (app_id, id);
