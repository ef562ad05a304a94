-- WebSocket features per topic: client events (`client_publish`, and an optional stricter
-- per-connection rate `client_event_limit_count` per `client_event_limit_secs`) and presence.
ALTER TABLE topics ADD COLUMN client_publish BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE topics ADD COLUMN presence BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE topics ADD COLUMN client_event_limit_count BIGINT;
ALTER TABLE topics ADD COLUMN client_event_limit_secs BIGINT;
