-- A first full run (customer_attributes empty) writes each customer's order
-- figures here, ranks them once the histogram of all of them is known, and
-- writes each row of customer_attributes once, with its scores, stage and
-- tier, instead of inserting the figures and updating every row again.
-- Unlogged: a crash empties it, and the run that follows an unfinished full
-- run is a full one that fills it again. Runs of the segments job hold an
-- advisory lock, so one run at a time uses it.
CREATE UNLOGGED TABLE segment_fill (LIKE customer_attributes INCLUDING DEFAULTS);
ALTER TABLE segment_fill ADD PRIMARY KEY (customer_id);
