-- Coupons: a coupon whose message lost its place under the frequency cap is
-- voided (never redeemable); redemptions are looked up by order.
ALTER TABLE coupons ADD COLUMN voided_at INTEGER;
