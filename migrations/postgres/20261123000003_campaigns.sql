-- Campaigns: what a free-item coupon gives, and each message's campaign
-- priority (the frequency cap lets a higher one win).
ALTER TABLE coupons ADD COLUMN item TEXT;
ALTER TABLE messages ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
CREATE INDEX coupons_by_customer ON coupons (customer_id);
