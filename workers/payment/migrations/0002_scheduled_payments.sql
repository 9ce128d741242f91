-- A scheduled payment is a standing order with one occurrence (frequency `once`).
ALTER TABLE standing_order DROP CONSTRAINT standing_order_frequency_check;
ALTER TABLE standing_order ADD CONSTRAINT standing_order_frequency_check
    CHECK (frequency IN ('once', 'weekly', 'monthly', 'quarterly'));
