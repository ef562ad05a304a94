-- History keyed by a topic id instead of (app id, topic name). Every message row and its
-- primary key carried the app id (a 36-character UUID string) and the topic name; the
-- publish statement's b-tree inserts compared those strings. With a bigint topic id (which
-- the publish statement's upsert returns) the same statement took 0.045 ms less out of
-- ~0.55 (pgbench, 16 messages on 16 topics; docs/benchmarks.md, session 11).
-- SQLite keeps its schema: there the key compare is cheap and the publish path is its own.

ALTER TABLE topics ADD COLUMN id BIGINT GENERATED ALWAYS AS IDENTITY;
ALTER TABLE topics ADD CONSTRAINT topics_id_key UNIQUE (id);

CREATE TABLE topic_messages (
    topic_id      BIGINT NOT NULL,
    seq           BIGINT NOT NULL,
    payload       TEXT NOT NULL,
    published_at  BIGINT NOT NULL,
    PRIMARY KEY (topic_id, seq)
);

-- A message without its topic row cannot be read (history is read through the topic).
INSERT INTO topic_messages (topic_id, seq, payload, published_at)
SELECT t.id, m.seq, m.payload, m.published_at
FROM messages m JOIN topics t ON t.app_id = m.app_id AND t.name = m.topic;

DROP TABLE messages;
ALTER TABLE topic_messages RENAME TO messages;
ALTER TABLE messages RENAME CONSTRAINT topic_messages_pkey TO messages_pkey;

-- Deleting a topic (directly, or by its app's cascade) still deletes its history.
CREATE OR REPLACE FUNCTION delete_topic_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM messages WHERE topic_id = OLD.id;
    RETURN NULL;
END
$$;
