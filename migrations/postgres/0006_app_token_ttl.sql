-- Each app's longest subscriber-token lifetime (seconds); 30 days unless changed.
ALTER TABLE apps ADD COLUMN max_token_ttl_secs BIGINT NOT NULL DEFAULT 2592000;
