//! The binary under failures an operator meets: a disk that fills up (a real 3 MB tmpfs, in a mount
//! namespace of the server's own), two first starts at once, and the CLI reading the same settings as
//! `serve`.

mod common;

use common::{call, Serve};
use pronto_store::testing::TestDb;
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const WRITE: &str = "pk_write_hardening_000001";
const ADMIN: &str = "pk_admin_hardening_000001";

fn track(url: &str, i: usize) -> u16 {
    call(
        "POST",
        &format!("{url}/v1/track"),
        Some(WRITE),
        None,
        Some(json!({"userId": format!("u-{i}"), "event": "Page Viewed", "messageId": format!("m-{i}"),
                    "properties": {"pad": "x".repeat(1500)}})),
    )
    .0
}

/// The server's SQLite file lives on a 3 MB tmpfs mounted in a private mount namespace (nothing is mounted
/// for anyone else, and it vanishes with the process); the test fills and frees that tmpfs through
/// `/proc/<pid>/root`, which shows the server's own mounts.
#[test]
fn a_full_disk_answers_503_says_why_in_readyz_and_takes_writes_again_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let url = format!("sqlite://{}/pronto.db", data.display());
    let mount = "mount -t tmpfs -o size=3m tmpfs \"$0\" && exec \"$@\"";
    let s = Serve::start_in(
        dir.path(),
        &[
            ("DATABASE_URL", &url),
            ("PRONTO_WRITE_KEY", WRITE),
            ("PRONTO_ADMIN_KEY", ADMIN),
        ],
        &[
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            mount,
            data.to_str().unwrap(),
        ],
    );
    let inside =
        Path::new(&format!("/proc/{}/root", s.child.id())).join(data.strip_prefix("/").unwrap());
    assert!(
        inside.join("pronto.db").exists(),
        "the database is on the server's tmpfs"
    );
    assert!(!data.join("pronto.db").exists(), "and only there");

    let mut accepted = Vec::new();
    for i in 0..20 {
        assert_eq!(track(&s.url, i), 200);
        accepted.push(i);
    }
    // Fill the disk, leaving a few kilobytes.
    let ballast = inside.join("ballast");
    let mut f = std::fs::File::create(&ballast).unwrap();
    let chunk = vec![0u8; 4096];
    while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
    drop(f);
    let mut refused = 0;
    for i in 20..400 {
        match track(&s.url, i) {
            200 => accepted.push(i),
            503 => refused += 1,
            other => panic!("event {i}: {other}"),
        }
        if refused >= 20 {
            break;
        }
    }
    assert!(refused >= 20, "the disk filled: {refused} refused");
    let started = Instant::now();
    let (status, body) = call("GET", &format!("{}/readyz", s.url), None, None, None);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "readyz answers within a second"
    );
    assert_eq!(status, 503, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("full"),
        "readyz says why: {body}"
    );

    // Space comes back: the next write commits, without a restart.
    std::fs::remove_file(&ballast).unwrap();
    let next = 10_000;
    assert_eq!(track(&s.url, next), 200);
    accepted.push(next);
    let (status, _) = call("GET", &format!("{}/readyz", s.url), None, None, None);
    assert_eq!(status, 200);
    for i in &accepted {
        let (status, c) = call(
            "GET",
            &format!("{}/v1/contacts?user_id=u-{i}", s.url),
            None,
            Some(ADMIN),
            None,
        );
        assert_eq!(status, 200, "acknowledged event {i} is stored: {c}");
    }
}

fn pronto(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pronto"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("PRONTO_CONFIG")
        .env_remove("DATABASE_URL")
        .env_remove("PRONTO_SMS_AUTH_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn check_and_report_read_secrets_from_the_environment_as_serve_does_and_a_check_lists_every_problem(
) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pronto.toml");
    std::fs::write(
        &cfg,
        "[sms]\naccount_sid = \"AC0001\"\nfrom = \"+15005550006\"\n",
    )
    .unwrap();
    let file = cfg.to_str().unwrap();
    let out = pronto(dir.path(), &["check", file], &[]);
    assert_eq!(out.status.code(), Some(1), "no token anywhere");
    assert!(String::from_utf8_lossy(&out.stderr).contains("PRONTO_SMS_AUTH_TOKEN"));
    let token = [("PRONTO_SMS_AUTH_TOKEN", "sms-token-from-env")];
    let out = pronto(dir.path(), &["check", file], &token);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let db = format!("sqlite://{}", dir.path().join("p.db").display());
    assert!(pronto(dir.path(), &["migrate", "--database-url", &db], &[])
        .status
        .success());
    let out = pronto(
        dir.path(),
        &[
            "report",
            "speed-to-lead",
            "--config",
            file,
            "--database-url",
            &db,
        ],
        &token,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Speed to lead"));

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[server]\nlisten = \"nowhere\"\n[ingest]\ndefault_region = \"XX\"\n\
         [[form]]\nname = \"a b\"\n[[flow]]\nid = \"f\"\ntrigger = { event = \"X\" }\n\
         [[flow.step]]\nsend = { channel = \"email\", template = \"missing\" }\n",
    )
    .unwrap();
    let out = pronto(dir.path(), &["check", bad.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for field in [
        "server.listen",
        "ingest.default_region",
        "form[0].name",
        "missing",
    ] {
        assert!(
            err.contains(field),
            "every problem at once; {field} is missing from: {err}"
        );
    }
}

#[test]
fn keys_are_listed_created_and_revoked_from_the_cli_and_reading_commands_never_create_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let out = pronto(dir.path(), &["messages"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no database"),
        "{out:?}"
    );
    assert!(
        !dir.path().join("pronto.db").exists(),
        "reading never creates a database"
    );

    let s = Serve::start(
        dir.path(),
        &[("PRONTO_WRITE_KEY", WRITE), ("PRONTO_ADMIN_KEY", ADMIN)],
    );
    let out = pronto(
        dir.path(),
        &["keys", "create", "--kind", "write", "--label", "site"],
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    let key = printed.lines().last().unwrap().trim().to_string();
    assert!(key.starts_with("pk_write_"), "{printed}");
    let event = |k: &str| {
        call(
            "POST",
            &format!("{}/v1/track", s.url),
            Some(k),
            None,
            Some(json!({"userId": "k", "event": "E"})),
        )
        .0
    };
    assert_eq!(
        event(&key),
        200,
        "a key made by the CLI opens the running server"
    );
    let list =
        String::from_utf8_lossy(&pronto(dir.path(), &["keys", "list"], &[]).stdout).to_string();
    let line = list
        .lines()
        .find(|l| l.ends_with("site"))
        .expect("the new key is listed");
    assert!(!list.contains(&key), "a listing never shows a key");
    let id = line.split_whitespace().next().unwrap();
    let out = pronto(dir.path(), &["keys", "revoke", id], &[]);
    assert!(out.status.success(), "{out:?}");
    let revoked = Instant::now();
    while event(&key) != 401 {
        assert!(
            revoked.elapsed() < Duration::from_secs(2),
            "the server refuses a revoked key within its cache's second"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        pronto(dir.path(), &["keys", "revoke", "nope"], &[])
            .status
            .code(),
        Some(1)
    );
}

/// Two processes started at the same moment on an empty database: one stores and prints its pair, the
/// other prints nothing secret, and the printed pair works on both.
fn two_first_starts_together_print_one_pair_of_keys(url: &str) {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let env = [("DATABASE_URL", url)];
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| Serve::start(dirs[0].path(), &env));
        let b = scope.spawn(|| Serve::start(dirs[1].path(), &env));
        (a.join().unwrap(), b.join().unwrap())
    });
    let printed: Vec<&Serve> = [&a, &b]
        .into_iter()
        .filter(|s| s.key("write key").is_some())
        .collect();
    assert_eq!(
        printed.len(),
        1,
        "exactly one process prints keys: {:?} / {:?}",
        a.banner,
        b.banner
    );
    let quiet = if printed[0].url == a.url { &b } else { &a };
    assert!(quiet.key("admin key").is_none() && !quiet.banner.iter().any(|l| l.contains("pk_")));
    let (write, admin) = (
        printed[0].key("write key").unwrap(),
        printed[0].key("admin key").unwrap(),
    );
    for s in [&a, &b] {
        let (st, _) = call(
            "POST",
            &format!("{}/v1/track", s.url),
            Some(&write),
            None,
            Some(json!({"userId": "x", "event": "E"})),
        );
        assert_eq!(st, 200);
        let (st, _) = call(
            "GET",
            &format!("{}/v1/flows", s.url),
            None,
            Some(&admin),
            None,
        );
        assert_eq!(st, 200);
    }
}

#[test]
fn two_first_starts_together_print_one_pair_of_keys_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    two_first_starts_together_print_one_pair_of_keys(&format!(
        "sqlite://{}/shared.db",
        dir.path().display()
    ));
}

#[test]
fn two_first_starts_together_print_one_pair_of_keys_on_postgres() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TestDb::postgres());
    two_first_starts_together_print_one_pair_of_keys(&db.url);
}
