-- Publishing checked this foreign key on every message row: about a third of the publish
-- statement's execution (EXPLAIN ANALYZE, 8 messages: 0.09 of 0.26 ms), though that same
-- statement upserts each topic row first and holds its lock until commit, so the topic
-- always exists. Deleting a topic (directly, or by its app's cascade) still deletes its
-- history, by trigger. SQLite keeps the foreign key: there the check is a cheap lookup.
ALTER TABLE messages DROP CONSTRAINT messages_app_id_topic_fkey;

CREATE FUNCTION delete_topic_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM messages WHERE app_id = OLD.app_id AND topic = OLD.name;
    RETURN NULL;
END
$$;

CREATE TRIGGER topics_delete_history AFTER DELETE ON topics
    FOR EACH ROW EXECUTE FUNCTION delete_topic_history();
