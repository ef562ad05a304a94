-- Each app's quota overrides (JSON: connections, topics_per_connection, publishes_per_sec,
-- ephemeral_per_sec); no row: the defaults.
CREATE TABLE app_quotas (
    app_id TEXT PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
    quotas TEXT NOT NULL
);
