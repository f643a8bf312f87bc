-- The segments job reads every customer's orders through this index, for
-- their amount, instant, local date and minute. With those in the index, a
-- customer's orders are read from the index alone where vacuum has marked
-- the table's pages all-visible (most of them, on a server with autovacuum):
-- a warm full run over 1,000,000 customers and 10,000,000 orders took 7 %
-- less time. The index grows by about half (389 to 565 MB there).
DROP INDEX orders_by_customer;
CREATE INDEX orders_by_customer ON orders (customer_id, ordered_at)
    INCLUDE (amount_fen, local_date, local_minute);
