-- When each admin key was last used (epoch ms; NULL: never), recorded at most once a minute.
ALTER TABLE admin_keys ADD COLUMN last_used_at BIGINT;
