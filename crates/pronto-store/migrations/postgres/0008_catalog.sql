-- A shop's catalog (its product webhooks, `pronto import products`) and what its orders bought together,
-- for the recommendations a cart's message shows. `shop` is the configured shop a webhook named, or '' for
-- events from the Segment API and imports without --shop.
CREATE TABLE products (
    workspace_id UUID NOT NULL,
    shop         TEXT NOT NULL,
    product_key  TEXT NOT NULL,
    product_id   TEXT,
    skus         JSONB NOT NULL,
    title        TEXT NOT NULL,
    url          TEXT,
    image_url    TEXT,
    price        DOUBLE PRECISION,
    available    BOOLEAN NOT NULL,
    kind         TEXT,
    tags         JSONB NOT NULL,
    collections  JSONB NOT NULL,
    updated_at   TIMESTAMPTZ,
    PRIMARY KEY (workspace_id, shop, product_key)
);
-- Every term a product is found by: `id:`/`sku:` recognise a cart item (relates false), `type:`/`tag:`/
-- `collection:` relate products to each other (relates true).
CREATE TABLE product_terms (
    workspace_id UUID NOT NULL,
    shop         TEXT NOT NULL,
    term         TEXT NOT NULL,
    product_key  TEXT NOT NULL,
    relates      BOOLEAN NOT NULL,
    PRIMARY KEY (workspace_id, shop, term, product_key)
);
CREATE INDEX product_terms_by_product ON product_terms (workspace_id, shop, product_key);
-- One row per order and item (`id:<product id>` or `sku:<sku>`), so a redelivered order counts once.
CREATE TABLE order_items (
    workspace_id UUID NOT NULL,
    shop         TEXT NOT NULL,
    order_id     TEXT NOT NULL,
    item         TEXT NOT NULL,
    PRIMARY KEY (workspace_id, shop, order_id, item)
);
CREATE INDEX order_items_by_item ON order_items (workspace_id, shop, item);
