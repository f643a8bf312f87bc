-- A customer marked for the segments job again while a segments batch
-- unmarks it: the mark must survive unless the batch sees the new orders.
-- The batch deletes its customers' marks before it reads their orders
-- (store/postgres/segments.rs, clear_marks); a writer finding a customer
-- marked already now locks that mark (`DO UPDATE … WHERE false` locks the
-- row without writing it), so the batch's delete waits for the writer's
-- commit and its read then sees the writer's orders. `DO NOTHING` took no
-- lock: the batch could delete the mark, then read the orders from before
-- the writer's commit, and the change was never recomputed.
CREATE OR REPLACE FUNCTION mark_dirty_from_new() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'orders' THEN
        INSERT INTO segment_dirty (customer_id)
            SELECT DISTINCT customer_id FROM new_rows
            ON CONFLICT (customer_id) DO UPDATE SET customer_id = EXCLUDED.customer_id WHERE false;
    ELSE
        INSERT INTO segment_dirty (customer_id)
            SELECT DISTINCT id FROM new_rows
            ON CONFLICT (customer_id) DO UPDATE SET customer_id = EXCLUDED.customer_id WHERE false;
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION mark_dirty_from_old() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO segment_dirty (customer_id)
        SELECT DISTINCT customer_id FROM old_rows
        ON CONFLICT (customer_id) DO UPDATE SET customer_id = EXCLUDED.customer_id WHERE false;
    RETURN NULL;
END $$;
