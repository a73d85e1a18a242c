-- Stock levels and the append-only ledger of every change.
--
-- The bounds repeat the ones stated in schemas/ (product-sku.json,
-- quantity.json, stock-level.json): 1-50 characters of A-Za-z0-9_-, a
-- quantity of 1..1,000,000 and a level of 0..1,000,000,000. A request the
-- schemas accept therefore never fails on these constraints; the end-to-end
-- tests prove the two agree.

CREATE TABLE inventory (
    product_sku varchar(50) PRIMARY KEY
        CONSTRAINT inventory_product_sku_format CHECK (product_sku ~ '^[A-Za-z0-9_-]{1,50}$'),
    stock_level integer NOT NULL
        CONSTRAINT inventory_stock_level_range CHECK (stock_level BETWEEN 0 AND 1000000000),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per applied add or remove, written in the same transaction as the
-- level. level_after - level_before is the change, so for every product the
-- sum of changes equals its level whatever the rules decided.
CREATE TABLE stock_movements (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    product_sku varchar(50) NOT NULL REFERENCES inventory (product_sku),
    operation text NOT NULL CONSTRAINT stock_movements_operation CHECK (operation IN ('add', 'remove')),
    quantity integer NOT NULL CONSTRAINT stock_movements_quantity_range CHECK (quantity BETWEEN 1 AND 1000000),
    level_before integer NOT NULL CONSTRAINT stock_movements_level_before_range CHECK (level_before BETWEEN 0 AND 1000000000),
    level_after integer NOT NULL CONSTRAINT stock_movements_level_after_range CHECK (level_after BETWEEN 0 AND 1000000000),
    rules_name text NOT NULL,
    rules_version text NOT NULL,
    rules_digest text NOT NULL,
    request_id uuid NOT NULL,
    trace_id text,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX stock_movements_product_idx ON stock_movements (product_sku, id);

-- Nothing may rewrite history.
CREATE FUNCTION stock_movements_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'stock_movements is append-only';
END;
$$;

CREATE TRIGGER stock_movements_no_update_or_delete
    BEFORE UPDATE OR DELETE ON stock_movements
    FOR EACH ROW EXECUTE FUNCTION stock_movements_append_only();
