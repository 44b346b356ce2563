-- One order, one spend: while a reservation of an order is open, committed, or owes the
-- master a call, no second one is made for it. (RetailCRM charges and releases by order,
-- so a second reservation would share the first's charge and be undone by its release.)
CREATE UNIQUE INDEX reservations_one_per_order ON reservations (master, master_order_id)
WHERE status IN ('creating', 'awaiting_code', 'held', 'commit_pending', 'release_pending',
                 'committed')
   OR pending IS NOT NULL;
