-- The quintile and tier thresholds are read from segment_histogram, and an
-- incremental run finds the customers a moved threshold or date re-ranks with
-- one scan of customer_attributes. Nothing reads the per-value indexes any
-- more, and each new order moved the customer's entry in all of them: on
-- 1,000,000 customers they were two thirds of an incremental run's writes.
-- The recency index stays: win-back campaigns find lapsed customers by it.
DROP INDEX customer_attributes_frequency;
DROP INDEX customer_attributes_monetary;
DROP INDEX customer_attributes_spend_365d;
DROP INDEX customer_attributes_joined;
