-- Returns after a commit (PRODUCT 3.4): what the bridge needs to give spent points back
-- in proportion. A reverse owed to the master is `pending = 'reverse'` like any owed call.
ALTER TABLE reservations ADD COLUMN basket TEXT;         -- the order's lines at commit (JSON)
ALTER TABLE reservations ADD COLUMN return_target TEXT;  -- points a return needs back in all
ALTER TABLE reservations ADD COLUMN returned TEXT;       -- points given back at the master
-- Every change of an order in `bonus.order_statuses` looks its reservations up by order.
CREATE INDEX reservations_order ON reservations (order_system, order_id);
