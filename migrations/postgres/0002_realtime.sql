-- Realtime: topics, durable messages, app secrets, and the trigger/outbox tables that a
-- publish writes to (the dispatcher that drains the outbox is a later migration's concern).

CREATE TABLE topics (
    app_id                  TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    name                    TEXT NOT NULL,
    description             TEXT NOT NULL DEFAULT '',
    external_subscribable   BOOLEAN NOT NULL DEFAULT FALSE,
    auth_mode               TEXT NOT NULL DEFAULT 'token',
    retention_max_messages  BIGINT,
    retention_max_age_secs  BIGINT,
    -- The newest seq ever given out. Taking the next seq updates this row, and the row lock
    -- held until commit is what makes commit order equal seq order.
    last_seq                BIGINT NOT NULL DEFAULT 0,
    created_at              BIGINT NOT NULL,
    updated_at              BIGINT NOT NULL,
    PRIMARY KEY (app_id, name)
);

CREATE TABLE messages (
    app_id        TEXT NOT NULL,
    topic         TEXT NOT NULL,
    seq           BIGINT NOT NULL,
    payload       TEXT NOT NULL,
    published_at  BIGINT NOT NULL,
    PRIMARY KEY (app_id, topic, seq),
    FOREIGN KEY (app_id, topic) REFERENCES topics (app_id, name) ON DELETE CASCADE
);

CREATE TABLE app_secrets (
    app_id      TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    kid         TEXT NOT NULL,
    secret      BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT,
    PRIMARY KEY (app_id, kid)
);

CREATE TABLE triggers (
    id             TEXT PRIMARY KEY,
    app_id         TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    kind           TEXT NOT NULL,
    script         TEXT NOT NULL,
    filter         TEXT NOT NULL,
    -- pubsub only: the topic, or 'prefix.' when topic_prefix (from a 'prefix.*' filter).
    topic_match    TEXT,
    topic_prefix   BOOLEAN NOT NULL DEFAULT FALSE,
    enabled        BOOLEAN NOT NULL DEFAULT TRUE,
    max_attempts   INTEGER NOT NULL DEFAULT 5,
    base_delay_ms  BIGINT NOT NULL DEFAULT 1000,
    max_delay_ms   BIGINT NOT NULL DEFAULT 60000,
    created_at     BIGINT NOT NULL
);
CREATE INDEX triggers_by_kind ON triggers (app_id, kind);

CREATE TABLE outbox (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id           TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    trigger_id       TEXT NOT NULL REFERENCES triggers (id) ON DELETE CASCADE,
    event            TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    lease_owner      TEXT,
    lease_until      BIGINT,
    last_error       TEXT,
    created_at       BIGINT NOT NULL
);
CREATE INDEX outbox_due ON outbox (next_attempt_at);
