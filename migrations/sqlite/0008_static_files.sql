-- An app's static site (the manifest's static directory), served on the app's Host for
-- GET/HEAD paths no route matches. The bytes are blobs in the app's blob directory, as the
-- files:: SDK's are, with precompressed variants when they are smaller.
CREATE TABLE static_files (
    app_id       TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    path         TEXT NOT NULL,
    blob         TEXT NOT NULL,
    gzip_blob    TEXT,
    br_blob      TEXT,
    size         BIGINT NOT NULL,
    etag         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (app_id, path)
);

-- Single-page apps: a GET for a path with no route and no file answers index.html.
ALTER TABLE apps ADD COLUMN static_spa BOOLEAN NOT NULL DEFAULT FALSE;
