//! Table tests for recommendations and order items; the platforms' published product payloads and CSV
//! exports (`tests/fixtures/shops`) read into products.

use super::*;
use serde_json::json;

fn product(key: &str, kind: &str, tags: &[&str], available: bool) -> Product {
    Product {
        key: key.into(),
        product_id: Some(format!("{key}-id")),
        skus: vec![format!("{key}-sku")],
        title: key.to_uppercase(),
        url: Some(format!("https://shop.example/products/{key}")),
        image_url: None,
        price: Some(10.0),
        available,
        kind: (!kind.is_empty()).then(|| kind.to_string()),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        collections: Vec::new(),
        updated_at: None,
    }
}

fn catalog() -> Related {
    Related {
        products: vec![
            product("mug", "Kitchen", &["blue"], true),
            product("saucer", "Kitchen", &[], true),
            product("teapot", "Kitchen", &["Blue"], true),
            product("spoon", "Cutlery", &[], true),
            product("kettle", "Kitchen", &["blue"], false),
            product("sock", "Clothing", &[], true),
        ],
        together: vec![
            ("id:mug-id".into(), "id:spoon-id".into(), 5),
            ("id:mug-id".into(), "id:saucer-id".into(), 2),
            ("id:mug-id".into(), "id:kettle-id".into(), 9),
            ("id:sock-id".into(), "id:teapot-id".into(), 7),
        ],
    }
}

#[test]
fn recommendations_are_ranked_by_orders_together_then_shared_terms_and_skip_the_cart_and_the_unavailable(
) {
    let related = catalog();
    let keys = |items: &[&str], n: usize| -> Vec<String> {
        let items: Vec<String> = items.iter().map(|s| s.to_string()).collect();
        recommend(&related, &items, n)
            .into_iter()
            .map(|p| p.key.clone())
            .collect()
    };
    let cases: Vec<(&str, Vec<&str>, usize, Vec<&str>)> = vec![
        (
            "bought together first (spoon 5, saucer 2), then by shared type and tag (teapot: kitchen + blue); the kettle is out of stock",
            vec!["id:mug-id"],
            4,
            vec!["spoon", "saucer", "teapot"],
        ),
        ("at most n", vec!["id:mug-id"], 2, vec!["spoon", "saucer"]),
        (
            "a cart item found by its SKU is the same product",
            vec!["sku:mug-sku"],
            4,
            vec!["teapot", "saucer"],
        ),
        (
            "nothing already in the cart",
            vec!["id:mug-id", "id:spoon-id"],
            4,
            vec!["saucer", "teapot"],
        ),
        (
            "an item the catalog does not know still has its orders",
            vec!["id:sock-id", "id:unknown"],
            4,
            vec!["teapot"],
        ),
        (
            "an item with neither orders nor shared terms gets nothing",
            vec!["id:unknown"],
            4,
            vec![],
        ),
        ("an empty cart gets nothing", vec![], 4, vec![]),
    ];
    for (why, items, n, want) in cases {
        assert_eq!(keys(&items, n), want, "{why}");
    }
}

#[test]
fn a_shop_without_a_catalog_gets_no_recommendations() {
    assert!(recommend(&Related::default(), &["id:1".into()], 2).is_empty());
}

#[test]
fn terms_identify_by_id_and_sku_and_relate_by_lower_cased_type_tags_and_collections() {
    let mut p = product("mug", "Kitchen Ware", &["Blue", " "], true);
    p.collections = vec!["Gifts".into()];
    let terms: Vec<(String, bool)> = p.terms().into_iter().map(|t| (t.text, t.relates)).collect();
    assert_eq!(
        terms,
        vec![
            ("collection:gifts".to_string(), true),
            ("id:mug-id".to_string(), false),
            ("sku:mug-sku".to_string(), false),
            ("tag:blue".to_string(), true),
            ("type:kitchen ware".to_string(), true),
        ]
    );
}

#[test]
fn an_order_completed_leaves_its_items_once_each_and_other_events_none() {
    let order = json!({
        "event": "Order Completed",
        "context": {"shop": {"shop": "example.myshopify.com"}},
        "properties": {"order_id": 450789469, "products": [
            {"product_id": 632910392, "quantity": 1},
            {"product_id": "632910392"},
            {"sku": "IPOD-342-N"},
            {"name": "a line with neither"}
        ]}
    });
    let cases: Vec<(&str, Option<&str>, Value, Option<Bought>)> =
        vec![
        (
            "an order with its shop, numeric ids written as text",
            Some("Order Completed"),
            order.clone(),
            Some(Bought {
                shop: "example.myshopify.com".into(),
                order: "450789469".into(),
                items: vec!["id:632910392".into(), "sku:IPOD-342-N".into()],
            }),
        ),
        (
            "from the Segment API: the default catalog, the checkout id when there is no order id",
            Some("Order Completed"),
            json!({"properties": {"checkout_id": "c1", "products": [{"product_id": "p1"}]}}),
            Some(Bought {
                shop: String::new(),
                order: "c1".into(),
                items: vec!["id:p1".into()],
            }),
        ),
        ("not an order", Some("Checkout Started"), order.clone(), None),
        (
            "no id",
            Some("Order Completed"),
            json!({"properties": {"products": [{"product_id": "p1"}]}}),
            None,
        ),
        (
            "no items",
            Some("Order Completed"),
            json!({"properties": {"order_id": "o1", "products": []}}),
            None,
        ),
    ];
    for (why, name, event, want) in cases {
        assert_eq!(bought(name, &event), want, "{why}");
    }
}

#[test]
fn a_recommendation_links_to_the_product_with_the_tracking_parameters() {
    let p = product("mug", "", &[], true);
    assert_eq!(
        p.context(&[("utm_source", "pronto")]),
        json!({"product_id": "mug-id", "name": "MUG", "url": "https://shop.example/products/mug?utm_source=pronto",
               "image_url": null, "price": 10.0})
    );
}

#[test]
fn a_late_delivery_never_overwrites_a_newer_product() {
    let at = |h: u32| Some(chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 12, 1, h, 0, 0).unwrap());
    let version = |key: &str, h: Option<u32>, title: &str| {
        let mut p = product(key, "", &[], true);
        p.updated_at = h.and_then(at);
        p.title = title.into();
        Change::Upsert(p)
    };
    let stored: HashMap<String, DateTime<Utc>> = [("mug".to_string(), at(10).unwrap())].into();
    let cases: Vec<(&str, Vec<Change>, Vec<&str>)> = vec![
        (
            "older than the stored one: dropped",
            vec![version("mug", Some(9), "old")],
            vec![],
        ),
        (
            "as new as the stored one: applied",
            vec![version("mug", Some(10), "same")],
            vec!["same"],
        ),
        (
            "newer: applied",
            vec![version("mug", Some(11), "new")],
            vec!["new"],
        ),
        (
            "an import has no time: applied",
            vec![version("mug", None, "imported")],
            vec!["imported"],
        ),
        (
            "two in one batch: the newest, whatever the order",
            vec![version("cup", Some(12), "b"), version("cup", Some(11), "a")],
            vec!["b"],
        ),
        (
            "deletes are not upserts",
            vec![Change::Delete {
                key: Some("mug".into()),
                product_id: None,
            }],
            vec![],
        ),
    ];
    for (why, changes, want) in cases {
        let got: Vec<&str> = newer(&changes, &stored)
            .iter()
            .map(|p| p.title.as_str())
            .collect();
        assert_eq!(got, want, "{why}");
    }
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../tests/fixtures/shops/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn shopifys_published_product_sample_becomes_a_catalog_product_keyed_by_its_handle() {
    let changes = shopify::from_webhook(
        "example.myshopify.com",
        "products/create",
        &fixture("shopify-products-create.json"),
    )
    .unwrap();
    let [Change::Upsert(p)] = &changes[..] else {
        panic!("{changes:?}")
    };
    assert_eq!(p.key, "example-t-shirt");
    // The sample's id, as published (rounded past 2^53 by the page that shows it).
    assert_eq!(p.product_id.as_deref(), Some("788032119674292900"));
    assert_eq!(p.title, "Example T-Shirt");
    assert_eq!(
        p.url.as_deref(),
        Some("https://example.myshopify.com/products/example-t-shirt")
    );
    assert_eq!(p.price, Some(19.99));
    assert!(
        p.available,
        "active, stock not tracked by Shopify in the sample"
    );
    assert_eq!(p.kind.as_deref(), Some("Shirts"));
    assert_eq!(p.tags, ["example", "mens", "t-shirt"]);
    assert_eq!(p.image_url, None, "the sample has no image");
    assert_eq!(
        p.updated_at.map(|t| t.to_rfc3339()),
        Some("2022-01-01T00:00:00+00:00".into())
    );
}

#[test]
fn a_shopify_product_that_cannot_be_sold_is_not_available() {
    let base: Value = serde_json::from_slice(&fixture("shopify-products-create.json")).unwrap();
    let tracked_out = |policy: &str| {
        let mut v = base.clone();
        for variant in v["variants"].as_array_mut().unwrap() {
            variant["inventory_management"] = json!("shopify");
            variant["inventory_quantity"] = json!(0);
            variant["inventory_policy"] = json!(policy);
        }
        v
    };
    let mut draft = base.clone();
    draft["status"] = json!("draft");
    let cases = [
        ("as published", base.clone(), true),
        ("a draft", draft, false),
        ("tracked and sold out", tracked_out("deny"), false),
        (
            "sold out but sold on backorder",
            tracked_out("continue"),
            true,
        ),
    ];
    for (why, body, want) in cases {
        let got =
            shopify::from_webhook("s", "products/update", body.to_string().as_bytes()).unwrap();
        let [Change::Upsert(p)] = &got[..] else {
            panic!()
        };
        assert_eq!(p.available, want, "{why}");
    }
}

#[test]
fn a_deleted_product_is_named_by_what_the_delivery_carries() {
    assert_eq!(
        shopify::from_webhook("s", "products/delete", br#"{"id":788032119674292922}"#).unwrap(),
        vec![Change::Delete {
            key: None,
            product_id: Some("788032119674292922".into())
        }]
    );
    assert_eq!(
        woocommerce::from_webhook("product.deleted", br#"{"id":794}"#).unwrap(),
        vec![Change::Delete {
            key: Some("794".into()),
            product_id: Some("794".into())
        }]
    );
}

#[test]
fn woocommerces_published_product_sample_becomes_a_catalog_product_with_its_categories() {
    let changes =
        woocommerce::from_webhook("product.updated", &fixture("woocommerce-product.json")).unwrap();
    let [Change::Upsert(p)] = &changes[..] else {
        panic!("{changes:?}")
    };
    assert_eq!(p.key, "794");
    assert_eq!(p.product_id.as_deref(), Some("794"));
    assert_eq!(p.title, "Premium Quality");
    assert_eq!(
        p.url.as_deref(),
        Some("https://example.com/product/premium-quality-19/")
    );
    assert_eq!(p.price, Some(21.99));
    assert!(p.available);
    assert_eq!(p.collections, ["Clothing", "T-shirts"]);
    assert!(p.skus.is_empty(), "the sample's SKU is empty");
    assert_eq!(
        p.image_url.as_deref(),
        Some("https://example.com/wp-content/uploads/2017/03/T_2_front-4.jpg")
    );
}

#[test]
fn shopifys_product_csv_template_imports_one_product_per_handle() {
    let (platform, products) =
        import::read("example.myshopify.com", &fixture("shopify-products.csv")).unwrap();
    assert_eq!(platform, crate::shop::Platform::Shopify);
    /// Key, title, SKUs, lowest price, available, collections.
    type Summary<'a> = (&'a str, &'a str, usize, Option<f64>, bool, Vec<String>);
    let summary: Vec<Summary<'_>> = products
        .iter()
        .map(|p| {
            (
                p.key.as_str(),
                p.title.as_str(),
                p.skus.len(),
                p.price,
                p.available,
                p.collections.clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "example-shirt",
                "Example T-Shirt",
                12,
                Some(25.0),
                true,
                vec!["T-Shirts".to_string()]
            ),
            (
                "example-pants",
                "Example Jeans",
                3,
                Some(95.0),
                false,
                vec!["Jeans".to_string()]
            ),
            (
                "example-hat",
                "Example Beanie",
                1,
                Some(17.99),
                false,
                vec!["Beanies".to_string()]
            ),
        ],
        "the shirt is active and published; the jeans a draft, the beanie archived"
    );
    let shirt = &products[0];
    assert_eq!(shirt.tags, ["Made to Order", "Shirt Tag"]);
    assert_eq!(shirt.kind.as_deref(), Some("Shirts"));
    assert_eq!(
        shirt.image_url.as_deref(),
        Some("https://burst.shopifycdn.com/photos/tshirts.jpg?width=1500")
    );
    assert_eq!(
        shirt.url.as_deref(),
        Some("https://example.myshopify.com/products/example-shirt")
    );
}

#[test]
fn woocommerces_sample_products_csv_imports_products_with_their_variations_folded_in() {
    let (platform, products) = import::read(
        "https://shop.example/",
        &fixture("woocommerce-products.csv"),
    )
    .unwrap();
    assert_eq!(platform, crate::shop::Platform::WooCommerce);
    assert_eq!(products.len(), 18, "25 rows, 7 of them variations");
    let vneck = products.iter().find(|p| p.key == "44").unwrap();
    assert_eq!(vneck.title, "V-Neck T-Shirt");
    assert_eq!(
        vneck.skus,
        [
            "woo-vneck-tee",
            "woo-vneck-tee-red",
            "woo-vneck-tee-green",
            "woo-vneck-tee-blue"
        ]
    );
    assert_eq!(vneck.price, Some(15.0), "its cheapest variation");
    assert_eq!(vneck.collections, ["Tshirts"]);
    assert_eq!(vneck.url.as_deref(), Some("https://shop.example/?p=44"));
    let beanie = products.iter().find(|p| p.key == "48").unwrap();
    assert_eq!(beanie.price, Some(18.0), "the sale price");
    assert!(products.iter().all(|p| p.available));
}

#[test]
fn an_import_of_an_unknown_file_names_what_it_lacks() {
    let cases: Vec<(&[u8], &str)> = vec![
        (b"sku,title\nA,B\n", "neither Shopify's product export"),
        (b"Handle,Title\n", "no products"),
        (b"Handle,Title\nmug,\xff\xfe\n", "line 2"),
    ];
    for (body, want) in cases {
        let e = import::read("s", body).unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
    }
}

#[test]
fn items_bought_together_are_counted_per_order_from_the_cart_items_side() {
    let rows = |r: &[(&str, &str)]| -> Vec<(String, String)> {
        r.iter()
            .map(|(o, i)| (o.to_string(), i.to_string()))
            .collect()
    };
    let cart = vec!["id:1".to_string(), "id:2".to_string()];
    /// Why, the `(order, item)` rows, the counts wanted.
    type Case<'a> = (&'a str, Vec<(String, String)>, Vec<(&'a str, &'a str, i64)>);
    let cases: Vec<Case<'_>> = vec![
        (
            "two orders with 1 and 3, one with 1, 2 and 4",
            rows(&[
                ("o1", "id:1"),
                ("o1", "id:3"),
                ("o2", "id:1"),
                ("o2", "id:3"),
                ("o3", "id:1"),
                ("o3", "id:2"),
                ("o3", "id:4"),
            ]),
            vec![
                ("id:1", "id:3", 2),
                ("id:1", "id:2", 1),
                ("id:1", "id:4", 1),
                ("id:2", "id:1", 1),
                ("id:2", "id:4", 1),
            ],
        ),
        (
            "an item twice in one order counts once",
            rows(&[("o1", "id:1"), ("o1", "id:3"), ("o1", "id:3")]),
            vec![("id:1", "id:3", 1)],
        ),
        (
            "an order of one item teaches nothing",
            rows(&[("o1", "id:1")]),
            vec![],
        ),
        (
            "orders without the cart's items teach nothing",
            rows(&[("o1", "id:5"), ("o1", "id:6")]),
            vec![],
        ),
    ];
    for (why, orders, want) in cases {
        let got = together(&cart, &orders);
        let got: Vec<(&str, &str, i64)> = got
            .iter()
            .map(|(a, b, n)| (a.as_str(), b.as_str(), *n))
            .collect();
        assert_eq!(got, want, "{why}");
    }
}

#[test]
fn cart_lines_without_an_image_or_link_take_their_catalog_products() {
    let mut mug = product("mug", "", &[], true);
    mug.image_url = Some("https://cdn.example/mug.png".into());
    let related = Related {
        products: vec![mug],
        together: vec![],
    };
    let line =
        |id: Option<&str>, sku: Option<&str>, image: Option<&str>| crate::ecommerce::Product {
            product_id: id.map(str::to_string),
            sku: sku.map(str::to_string),
            image_url: image.map(str::to_string),
            ..Default::default()
        };
    let mut lines = vec![
        line(Some("mug-id"), None, None),
        line(None, Some("mug-sku"), None),
        line(Some("mug-id"), None, Some("https://shop.example/own.png")),
        line(Some("other"), None, None),
    ];
    complete(&mut lines, &related);
    let got: Vec<(Option<&str>, Option<&str>)> = lines
        .iter()
        .map(|l| (l.image_url.as_deref(), l.url.as_deref()))
        .collect();
    let catalog = (
        Some("https://cdn.example/mug.png"),
        Some("https://shop.example/products/mug"),
    );
    assert_eq!(
        got,
        vec![
            catalog,
            catalog,
            (
                Some("https://shop.example/own.png"),
                Some("https://shop.example/products/mug")
            ),
            (None, None),
        ],
        "by id, by SKU, never replacing what the line has, nothing for an unknown product"
    );
}
