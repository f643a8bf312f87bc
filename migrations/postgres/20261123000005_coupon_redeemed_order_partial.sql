-- One coupon per order, kept by a partial unique index instead of a UNIQUE
-- constraint: the constraint's index held an entry for every coupon, NULL
-- included, so each coupon a campaign run issues cost one more index insert;
-- only redeemed coupons need one. Nothing looks coupons up by order (the
-- stats join from coupons to orders), and lookups by order id still can use
-- this index.
CREATE UNIQUE INDEX coupons_by_redeemed_order ON coupons (redeemed_order_id)
    WHERE redeemed_order_id IS NOT NULL;
ALTER TABLE coupons DROP CONSTRAINT coupons_redeemed_order_id_key;
