-- The storage watch's probe row: written and deleted to learn whether the database has
-- space again after a write was refused for lack of it (picloud-store `storage`).
CREATE TABLE storage_probe (
    id   INTEGER PRIMARY KEY,
    pad  BLOB NOT NULL
);
