//! The `pronto` binary as a user runs it: first start, keys, signals, config checks, and the official Segment
//! Node and Python libraries sending to it unchanged, on SQLite and PostgreSQL.
//!
//! The client libraries are installed by `scripts/test.sh` (npm ci, pip install); a missing one fails the
//! test with the command to run, it never skips.

mod common;

use common::{free_port, http, repo, Serve};
use pronto_store::testing::TestDb;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[test]
fn a_first_start_with_no_configuration_creates_the_database_prints_the_url_and_keys_once() {
    let dir = tempfile::tempdir().unwrap();
    let first = Serve::start(dir.path(), &[]);
    assert!(
        first.banner[0].starts_with("pronto ") && first.banner[0].contains(&first.url),
        "{:?}",
        first.banner
    );
    assert!(first.banner.iter().any(|l| l.contains("built-in example")));
    let write = first
        .key("write key")
        .expect("write key printed on first start");
    let admin = first
        .key("admin key")
        .expect("admin key printed on first start");
    assert!(
        dir.path().join("pronto.db").exists(),
        "SQLite file in the working directory"
    );
    assert!(
        dir.path().join("pronto.db-wal").exists(),
        "the database is in WAL mode"
    );
    http(
        "POST",
        &format!("{}/v1/track", first.url),
        None,
        Some((
            &write,
            serde_json::json!({"userId": "first", "event": "Hello"}),
        )),
    )
    .unwrap();
    assert!(first.terminate().success(), "SIGTERM exits 0");

    let second = Serve::start(dir.path(), &[]);
    assert_eq!(second.key("write key"), None, "keys are shown only once");
    let contact = http(
        "GET",
        &format!("{}/v1/contacts?user_id=first", second.url),
        Some(&admin),
        None,
    )
    .unwrap();
    assert_eq!(
        contact["events"][0]["name"], "Hello",
        "the event survived the restart"
    );
}

#[test]
fn configured_keys_are_accepted_instead_of_generated_ones() {
    let dir = tempfile::tempdir().unwrap();
    let s = Serve::start(
        dir.path(),
        &[
            ("PRONTO_WRITE_KEY", "my-write-key-1234567"),
            ("PRONTO_ADMIN_KEY", "my-admin-key-1234567"),
        ],
    );
    assert_eq!(s.key("write key"), None);
    assert_eq!(s.key("admin key"), None);
    http(
        "POST",
        &format!("{}/v1/identify", s.url),
        None,
        Some(("my-write-key-1234567", serde_json::json!({"userId": "cfg"}))),
    )
    .unwrap();
    http(
        "GET",
        &format!("{}/v1/contacts?user_id=cfg", s.url),
        Some("my-admin-key-1234567"),
        None,
    )
    .unwrap();
}

#[test]
fn check_accepts_the_example_and_rejects_a_bad_config_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_pronto"))
            .args(args)
            .current_dir(dir.path())
            .env_remove("PRONTO_CONFIG")
            .output()
            .unwrap()
    };
    let ok = run(&[
        "check",
        repo().join("pronto.example.toml").to_str().unwrap(),
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[form]]\nname = \"contact\"\nredirect = \"ftp://x\"\n",
    )
    .unwrap();
    let out = run(&["check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("form[0].redirect"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let serve = Command::new(env!("CARGO_BIN_EXE_pronto"))
        .args([
            "serve",
            "--config",
            bad.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        serve.status.code(),
        Some(1),
        "the server refuses an invalid config"
    );
    assert!(String::from_utf8_lossy(&serve.stderr).contains("form[0].redirect"));
}

fn run_client(program: &str, script: &Path, url: &str, key: &str, run_id: &str) {
    let out = Command::new(program)
        .arg(script)
        .args([url, key, run_id])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (install it; scripts/test.sh does): {e}"));
    assert!(
        out.status.success(),
        "{program} {} failed (scripts/test.sh installs the client libraries):\n{}\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn official_clients_are_accepted_unchanged(backend: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TestDb::of(backend));
    let dir = tempfile::tempdir().unwrap();
    let (write, admin) = ("client-write-key-123456", "client-admin-key-123456");
    let s = Serve::start(
        dir.path(),
        &[
            ("DATABASE_URL", &db.url),
            ("PRONTO_WRITE_KEY", write),
            ("PRONTO_ADMIN_KEY", admin),
        ],
    );
    let clients = repo().join("tests/clients");
    assert!(
        clients.join("node/node_modules/@segment/analytics-node").exists(),
        "@segment/analytics-node is not installed: run `npm ci --prefix tests/clients/node` (scripts/test.sh does)"
    );
    run_client("node", &clients.join("node/send.mjs"), &s.url, write, "n1");
    let python = std::env::var("PRONTO_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    run_client(
        &python,
        &clients.join("python/send.py"),
        &s.url,
        write,
        "p1",
    );

    let contact = |q: &str| {
        http(
            "GET",
            &format!("{}/v1/contacts?{q}", s.url),
            Some(admin),
            None,
        )
        .unwrap()
    };
    // Node: identify + track on one anonymous id merge into the user; the checkout is stored exactly as sent.
    let node = contact("user_id=node-n1");
    let names: Vec<&str> = node["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(names.contains(&"Checkout Started"), "{names:?}");
    let types: Vec<&str> = node["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    for t in ["identify", "track", "page", "screen", "group", "alias"] {
        assert!(types.contains(&t), "node sent a {t}: {types:?}");
    }
    let checkout = node["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "Checkout Started")
        .unwrap();
    assert_eq!(
        checkout["payload"]["properties"]["products"][0]["variant"],
        "blue"
    );
    assert_eq!(
        checkout["payload"]["context"]["library"]["name"],
        "@segment/analytics-node"
    );
    assert!(checkout["message_id"].is_string() && checkout["timestamp"].is_string());
    assert_eq!(node["traits"]["email"], "node-n1@example.com");
    assert!(node["identities"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["kind"] == "anonymous_id" && i["value"] == "anon-n1"));

    // Python, plain and gzip: phone normalised to E.164, the order stored.
    for (variant, phone) in [("plain", "+442079460018"), ("gz", "+442079460019")] {
        let py = contact(&format!("user_id=py-p1-{variant}"));
        assert!(
            py["identities"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["kind"] == "phone" && i["value"] == phone),
            "{py}"
        );
        let order = py["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "Order Completed")
            .expect("order stored");
        assert_eq!(order["payload"]["properties"]["revenue"], 42.0);
        assert_eq!(
            order["payload"]["context"]["library"]["name"],
            "analytics-python"
        );
        assert_eq!(
            py["events"].as_array().unwrap().len(),
            6,
            "six messages, each stored once"
        );
    }
    assert!(s.terminate().success());
}

#[test]
fn the_official_segment_node_and_python_clients_work_unchanged_on_sqlite() {
    official_clients_are_accepted_unchanged("sqlite");
}

#[test]
fn the_official_segment_node_and_python_clients_work_unchanged_on_postgres() {
    official_clients_are_accepted_unchanged("postgres");
}

/// The promise behind every 2xx: kill -9 the server in the middle of a stream of requests, start it again, and
/// every event that was answered 2xx is there (events in flight when it died may or may not be, and a retry
/// of those is safe).
fn acknowledged_events_survive_kill_9(backend: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TestDb::of(backend));
    let dir = tempfile::tempdir().unwrap();
    let (write, admin) = ("kill9-write-key-1234567", "kill9-admin-key-1234567");
    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("PRONTO_WRITE_KEY", write),
        ("PRONTO_ADMIN_KEY", admin),
    ];
    let mut s = Serve::start(dir.path(), &env);
    // Killed once this many were acknowledged (not after a fixed time: on a busy machine a debug build
    // may acknowledge few in any given time).
    const KILL_AFTER: usize = 200;
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let acked: Vec<String> = rt.block_on(async {
        let client = reqwest::Client::new();
        let mut tasks = Vec::new();
        for worker in 0..16 {
            let (client, url, count) = (client.clone(), s.url.clone(), count.clone());
            tasks.push(tokio::spawn(async move {
                let mut acked = Vec::new();
                for n in 0.. {
                    let id = format!("k9-{worker}-{n}");
                    let body =
                        serde_json::json!({"userId": "kill9", "event": "Tick", "messageId": id});
                    match client
                        .post(format!("{url}/v1/track"))
                        .basic_auth(write, Some(""))
                        .json(&body)
                        .send()
                        .await
                    {
                        Ok(r) if r.status().is_success() => {
                            acked.push(id);
                            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        _ => break,
                    }
                }
                acked
            }));
        }
        let started = std::time::Instant::now();
        while count.load(std::sync::atomic::Ordering::Relaxed) < KILL_AFTER {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the load did not run"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        s.child.kill().unwrap(); // SIGKILL: no shutdown path runs, requests are in flight.
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    });
    let _ = s.child.wait();
    assert!(
        acked.len() >= KILL_AFTER,
        "the load ran ({} acknowledged)",
        acked.len()
    );
    let again = Serve::start(dir.path(), &env);
    let mut stored = std::collections::HashSet::new();
    let mut before = String::new();
    loop {
        let page = http(
            "GET",
            &format!("{}/v1/contacts?user_id=kill9&limit=500{before}", again.url),
            Some(admin),
            None,
        )
        .unwrap();
        for e in page["events"].as_array().unwrap() {
            stored.insert(e["message_id"].as_str().unwrap().to_string());
        }
        match page["next_before"].as_i64() {
            Some(b) => before = format!("&before={b}"),
            None => break,
        }
    }
    let lost: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged events lost, e.g. {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
}

#[test]
fn acknowledged_events_survive_kill_9_on_sqlite() {
    acknowledged_events_survive_kill_9("sqlite");
}

#[test]
fn acknowledged_events_survive_kill_9_on_postgres() {
    acknowledged_events_survive_kill_9("postgres");
}

#[tokio::test]
async fn importing_a_shops_product_export_fills_its_catalog_in_place_and_a_bad_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/pronto.db", dir.path().display());
    let import = |file: &Path, shop: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pronto"));
        c.args(["import", "products", file.to_str().unwrap()])
            .current_dir(dir.path())
            .env_remove("PRONTO_CONFIG")
            .env("DATABASE_URL", &db);
        if let Some(s) = shop {
            c.args(["--shop", s]);
        }
        c.output().unwrap()
    };
    let csv = repo().join("tests/fixtures/shops/shopify-products.csv");
    for _ in 0..2 {
        let out = import(&csv, Some("https://Example.myshopify.com/"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "imported 3 shopify products into the catalog of example.myshopify.com (1 available, 3 written)",
            "the second import updates the same three in place"
        );
    }
    // Without --shop and with no [[shop]] configured: the catalog of carts from the Segment API.
    let woo = repo().join("tests/fixtures/shops/woocommerce-products.csv");
    let out = import(&woo, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(
            "imported 18 woocommerce products into the catalog of carts from the Segment API"
        ),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let store = pronto_store::connect(&db, pronto_store::Options::default())
        .await
        .unwrap();
    let ws = store.default_workspace().await.unwrap().id;
    // A cart with the shirt (by a variant's SKU, as a Shopify checkout names it) finds it in the catalog.
    let related = store
        .related_products(
            ws,
            "example.myshopify.com",
            &["sku:SRT_COT_222".to_string()],
        )
        .await
        .unwrap();
    let shirt = related
        .products
        .iter()
        .find(|p| p.key == "example-shirt")
        .expect("imported");
    assert_eq!(
        shirt.url.as_deref(),
        Some("https://example.myshopify.com/products/example-shirt")
    );
    assert_eq!(shirt.skus.len(), 12);
    // WooCommerce's hoodies relate to each other by their category.
    let related = store
        .related_products(ws, "", &["id:64".to_string()])
        .await
        .unwrap();
    let picked: Vec<&str> = pronto_domain::catalog::recommend(&related, &["id:64".to_string()], 4)
        .iter()
        .map(|p| p.title.as_str())
        .collect();
    assert_eq!(picked, ["Hoodie", "Hoodie with Logo", "Hoodie with Zipper"]);
    store.close().await;

    let bad = dir.path().join("orders.csv");
    std::fs::write(&bad, "order,total\n1,2\n").unwrap();
    let out = import(&bad, None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("neither Shopify's product export"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_suppression_list_and_the_export_work_from_the_command_line_and_a_bad_row_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/pronto.db", dir.path().display());
    let pronto = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_pronto"))
            .args(args)
            .current_dir(dir.path())
            .env_remove("PRONTO_CONFIG")
            .env("DATABASE_URL", &db)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, out, err) = pronto(&["migrate"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, out, err) = pronto(&[
        "suppressions",
        "add",
        "Gone@Example.com",
        "--reason",
        "hard_bounce",
        "--detail",
        "bounced at the old provider",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("1 added or changed"), "{out}");
    let file = dir.path().join("list.csv");
    std::fs::write(
        &file,
        "address,reason\n+1 415 555 2671,complaint\nann@example.com,\n",
    )
    .unwrap();
    let (code, out, err) = pronto(&["suppressions", "import", file.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("2 read, 2 added"), "{out}");
    let (code, out, _) = pronto(&["suppressions", "list", "--csv"]);
    assert_eq!(code, Some(0));
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert!(
        out.contains("email,gone@example.com,hard_bounce,cli,bounced at the old provider,"),
        "{out}"
    );
    assert!(out.contains("sms,+14155552671,complaint,csv,,"), "{out}");
    assert!(out.contains("email,ann@example.com,manual,csv,,"), "{out}");
    // A bad row is named and nothing of its file is listed.
    std::fs::write(&file, "address\nbob@example.com\nnobody\n").unwrap();
    let (code, _, err) = pronto(&["suppressions", "import", file.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(err.contains("line 3: address"), "{err}");
    let (code, out, _) = pronto(&["suppressions", "remove", "ANN@example.com"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("ann@example.com taken off the list"), "{out}");
    let (_, out, _) = pronto(&["suppressions", "list", "--csv"]);
    assert_eq!(
        out.lines().count(),
        3,
        "bob was never listed, ann is off: {out}"
    );
    // The export (its content is tested over the API, which answers from the same function).
    let (code, _, err) = pronto(&["contacts", "export", "0195f6f0-0000-7000-8000-000000000000"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no contact 0195f6f0"), "{err}");
    let (code, _, err) = pronto(&["contacts", "export", "ann"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("is not a contact id"), "{err}");
}
