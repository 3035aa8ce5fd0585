ALTER TABLE marketplace_purchases ALTER COLUMN total_price TYPE numeric(10,2);
