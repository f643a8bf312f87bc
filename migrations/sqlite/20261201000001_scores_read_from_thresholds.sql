-- Scores are no longer stored: they are read from each customer's figures
-- and the thresholds of the last segments run (segment_run_state). Where a
-- quintile threshold moved, every customer between its old and new place
-- was written again (tens of thousands when a recency quintile moved by a
-- day); stages and tiers, which are stored, are written as before.
ALTER TABLE customer_attributes DROP COLUMN r_score;
ALTER TABLE customer_attributes DROP COLUMN f_score;
ALTER TABLE customer_attributes DROP COLUMN m_score;
ALTER TABLE customer_attributes DROP COLUMN rfm;
