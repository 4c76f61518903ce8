use super::*;
use chrono::TimeZone;

fn at(h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, h, 0, 0).unwrap()
}

#[test]
fn a_refusal_lists_the_address_only_when_it_is_about_the_mailbox() {
    use Verdict::*;
    let hard = |t: &str| Suppress {
        reason: Reason::HardBounce,
        detail: t.to_string(),
    };
    let soft = |t: &str| SoftBounce {
        detail: t.to_string(),
    };
    let cases: [(&str, Medium, Option<&str>, &str, Verdict); 14] = [
        (
            "a bare 550 is a hard bounce",
            Medium::Email,
            Some("550"),
            "mailbox unavailable",
            hard("mailbox unavailable"),
        ),
        (
            "5.1.1 no such user",
            Medium::Email,
            Some("550"),
            "5.1.1 <x@example.com>: Recipient address rejected",
            hard("5.1.1 <x@example.com>: Recipient address rejected"),
        ),
        (
            "5.2.1 disabled mailbox",
            Medium::Email,
            Some("550"),
            "5.2.1 The email account that you tried to reach is disabled",
            hard("5.2.1 The email account that you tried to reach is disabled"),
        ),
        (
            "5.4.4 no route to the domain",
            Medium::Email,
            Some("550"),
            "5.4.4 Unable to route",
            hard("5.4.4 Unable to route"),
        ),
        (
            "551 user not local",
            Medium::Email,
            Some("551"),
            "user not local",
            hard("user not local"),
        ),
        (
            "553 mailbox name not allowed",
            Medium::Email,
            Some("553"),
            "mailbox name not allowed",
            hard("mailbox name not allowed"),
        ),
        (
            "5.2.2 mailbox full is soft",
            Medium::Email,
            Some("552"),
            "5.2.2 mailbox full",
            soft("5.2.2 mailbox full"),
        ),
        (
            "a bare 552 is soft",
            Medium::Email,
            Some("552"),
            "exceeded storage allocation",
            soft("exceeded storage allocation"),
        ),
        (
            "5.7.1 spam is our problem, not the address's",
            Medium::Email,
            Some("550"),
            "5.7.1 Message rejected as spam",
            Keep,
        ),
        (
            "5.1.8 is about the sender's domain",
            Medium::Email,
            Some("553"),
            "5.1.8 Sender address rejected: Domain not found",
            Keep,
        ),
        (
            "554 without a code keeps the address",
            Medium::Email,
            Some("554"),
            "transaction failed",
            Keep,
        ),
        (
            "Twilio 21610: STOP at the carrier",
            Medium::Sms,
            Some("21610"),
            "400 21610: Attempt to send to unsubscribed recipient",
            Suppress {
                reason: Reason::Unsubscribed,
                detail: "400 21610: Attempt to send to unsubscribed recipient".into(),
            },
        ),
        (
            "Twilio 21614: not a mobile number",
            Medium::Sms,
            Some("21614"),
            "400 21614: 'To' number is not a valid mobile number",
            hard("400 21614: 'To' number is not a valid mobile number"),
        ),
        (
            "Twilio 20003: our credentials",
            Medium::Sms,
            Some("20003"),
            "401 20003: Authenticate",
            Keep,
        ),
    ];
    for (name, medium, code, text, want) in cases {
        assert_eq!(after_refusal(medium, code, text), want, "{name}");
    }
}

#[test]
fn an_address_is_listed_under_one_spelling() {
    let cases = [
        (Medium::Email, " Ann@Example.COM ", Ok("ann@example.com")),
        (
            Medium::Email,
            "Ann Lee <Ann@Example.com>",
            Ok("ann@example.com"),
        ),
        (Medium::Email, "not an address", Err(())),
        (Medium::Sms, "+1 (415) 555-2671", Ok("+14155552671")),
        (Medium::Sms, "415 555 2671", Ok("+14155552671")),
        (Medium::Sms, "12", Err(())),
    ];
    for (medium, raw, want) in cases {
        assert_eq!(
            address(medium, raw).map_err(|_| ()),
            want.map(str::to_string),
            "{raw}"
        );
    }
}

#[test]
fn soft_bounces_list_an_address_for_a_while_once_they_reach_the_limit() {
    let policy = SoftBounces::default();
    assert_eq!(
        policy.suppression(Medium::Email, "a@b.co", 2, "4.2.2 full", at(9)),
        None
    );
    let listed = policy
        .suppression(Medium::Email, "a@b.co", 3, "4.2.2 full", at(9))
        .expect("the third soft bounce lists it");
    assert_eq!(listed.reason, Reason::SoftBounces);
    assert_eq!(listed.until, Some(at(9) + Duration::days(7)));
    assert!(listed.active_at(at(10)));
    assert!(!listed.active_at(at(9) + Duration::days(7)));
    let off = SoftBounces { max: 0, ..policy };
    assert_eq!(
        off.suppression(Medium::Email, "a@b.co", 9, "x", at(9)),
        None,
        "0 turns the rule off"
    );
}

#[test]
fn a_batch_skips_the_messages_whose_address_is_listed_and_active() {
    let entry = |address: &str, until: Option<DateTime<Utc>>| Suppression {
        medium: Medium::Email,
        address: address.into(),
        reason: Reason::HardBounce,
        source: "smtp".into(),
        detail: Some("550 no such user".into()),
        since: at(8),
        until,
    };
    let listed: HashMap<(u8, Medium, String), Suppression> = [
        entry("gone@example.com", None),
        entry("full@example.com", Some(at(9))),
    ]
    .into_iter()
    .map(|s| ((1, s.medium, s.address.clone()), s))
    .collect();
    let batch = [
        (&1, "email", "Gone@Example.com"),
        (&1, "email", "full@example.com"),
        (&1, "email", "ok@example.com"),
        (&1, "webhook", "gone@example.com"),
        (&1, "sms", "gone@example.com"),
        (&2, "email", "gone@example.com"),
    ];
    let skipped = suppressed(batch, &listed, at(10));
    assert!(
        skipped[0].as_deref().is_some_and(
            |w| w.starts_with("suppressed: hard bounce") && w.contains("550 no such user")
        ),
        "{skipped:?}"
    );
    assert_eq!(
        skipped[1..],
        [None, None, None, None, None],
        "an expired entry, an unlisted address, a webhook, another medium, another workspace's list"
    );
}

#[test]
fn an_erased_persons_address_is_matched_by_its_hash_alone() {
    let hash = hashed("erased@example.com");
    assert!(
        hash.starts_with("sha256:") && hash.len() == 7 + 64,
        "{hash}"
    );
    assert!(!hash.contains("erased"));
    let entry = Suppression {
        medium: Medium::Email,
        address: hash.clone(),
        reason: Reason::Manual,
        source: "erasure".into(),
        detail: None,
        since: at(0),
        until: None,
    };
    let listed: HashMap<_, _> = [((1, Medium::Email, hash), entry)].into_iter().collect();
    let skipped = suppressed(
        [
            (&1, "email", "Erased@Example.com"),
            (&1, "email", "kept@example.com"),
        ],
        &listed,
        at(1),
    );
    assert!(skipped[0].is_some(), "{skipped:?}");
    assert_eq!(skipped[1], None);
}

#[test]
fn a_lasting_entry_is_never_shortened_by_one_that_runs_out() {
    let entry = |reason, until: Option<DateTime<Utc>>, h| Suppression {
        medium: Medium::Email,
        address: "a@b.co".into(),
        reason,
        source: "smtp".into(),
        detail: None,
        since: at(h),
        until,
    };
    let hard = entry(Reason::HardBounce, None, 8);
    let soft = entry(Reason::SoftBounces, Some(at(20)), 9);
    let manual = entry(Reason::Manual, None, 10);
    let cases = [
        (
            "nothing listed: the new entry",
            None,
            soft.clone(),
            Some(soft.clone()),
        ),
        (
            "soft bounces do not shorten a hard bounce",
            Some(&hard),
            soft.clone(),
            None,
        ),
        (
            "a hard bounce replaces soft bounces",
            Some(&soft),
            hard.clone(),
            Some(hard.clone()),
        ),
        (
            "a newer lasting entry replaces a lasting one",
            Some(&hard),
            manual.clone(),
            Some(manual.clone()),
        ),
        (
            "the same entry again changes nothing",
            Some(&hard),
            hard.clone(),
            None,
        ),
    ];
    for (name, old, new, want) in cases {
        assert_eq!(merge(old, new), want, "{name}");
    }
}

#[test]
fn the_list_goes_out_as_csv_and_comes_back_the_same() {
    let entries = vec![
        given(
            "Gone@Example.com",
            None,
            Some(Reason::HardBounce),
            Some("550 5.1.1, no such user"),
            "smtp",
            Some(at(8)),
            at(9),
        )
        .unwrap(),
        given("+1 415 555 2671", None, None, None, "api", None, at(9)).unwrap(),
    ];
    assert_eq!(entries[0].address, "gone@example.com");
    assert_eq!(
        (entries[1].medium, entries[1].reason, entries[1].since),
        (Medium::Sms, Reason::Manual, at(9))
    );
    let text = to_csv(&entries);
    assert!(
        text.starts_with("medium,address,reason,source,detail,since,until\n"),
        "{text}"
    );
    assert_eq!(from_csv(&text, "csv", at(12)).unwrap(), entries);
}

#[test]
fn a_csv_import_names_the_line_and_field_it_cannot_take() {
    let cases = [
        (
            "address\nann@example.com\nnot an address\n",
            "line 3: address",
        ),
        (
            "address,reason\nann@example.com,bounced\n",
            "line 2: reason",
        ),
        ("address,medium\nann@example.com,fax\n", "line 2: medium"),
        (
            "address,since\nann@example.com,yesterday\n",
            "line 2: since",
        ),
        ("email\nann@example.com\n", "body"),
        ("reason\nmanual\n", "body"),
        ("address,detail\nann@example.com\n", "line 2: row"),
    ];
    for (text, field) in cases {
        let e = from_csv(text, "csv", at(9)).expect_err(text);
        assert_eq!(e.0[0].field, field, "{text}: {e:?}");
    }
    let ok = from_csv("Address\nann@example.com\n+14155552671\n", "csv", at(9)).unwrap();
    assert_eq!(
        ok.iter()
            .map(|s| (s.medium, s.source.as_str()))
            .collect::<Vec<_>>(),
        [(Medium::Email, "csv"), (Medium::Sms, "csv")]
    );
}

#[test]
fn bounces_and_complaints_that_arrive_by_mail_are_read_from_public_samples() {
    use report::{read, verdicts};
    let fixture = |name: &str| {
        let path = format!(
            "{}/../../tests/fixtures/bounces/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    let hard = |detail: &str| Verdict::Suppress {
        reason: Reason::HardBounce,
        detail: detail.into(),
    };
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, Verdict)>);
    let cases: [Case; 5] = [
        (
            "flanker-mailbox-full.eml",
            "dsn",
            vec![(
                "user@aol.com",
                Verdict::SoftBounce {
                    detail: "5.2.2 smtp; 552 5.2.2 E4.12 user MAILBOX FULL".into(),
                },
            )],
        ),
        ("flanker-no-mx.eml", "dsn", vec![]),
        (
            "flanker-office365.eml",
            "dsn",
            vec![(
                "noname@example.com",
                hard("5.1.10 smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient noname@example.com not found by SMTP address lookup"),
            )],
        ),
        (
            "mail-auth-arf-002.eml",
            "feedback",
            vec![(
                "user@example.com",
                Verdict::Suppress {
                    reason: Reason::Complaint,
                    detail: "reported as spam (feedback report)".into(),
                },
            )],
        ),
        ("mail-auth-arf-003.eml", "feedback", vec![]),
    ];
    for (name, kind, want) in cases {
        let report = read(&fixture(name));
        assert_eq!(report.kind(), kind, "{name}: {report:?}");
        let got = verdicts(&report);
        let want: Vec<(String, Verdict)> =
            want.into_iter().map(|(a, v)| (a.to_string(), v)).collect();
        assert_eq!(got, want, "{name}: {report:?}");
    }
    // The delayed one still names its recipient and status; the reported messages' ids are found.
    match read(&fixture("flanker-no-mx.eml")) {
        report::Report::Delivery {
            recipients,
            original_message_id,
        } => {
            assert_eq!(
                (recipients[0].action.as_str(), recipients[0].status.as_str()),
                ("delayed", "4.4.4")
            );
            assert_eq!(
                original_message_id.as_deref(),
                Some("19E44CA63F984902B7D654F8FF40F89D@bo")
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        read(b"From: a@b.co\r\nSubject: hi\r\n\r\nthanks!\r\n"),
        report::Report::Other
    );
    assert_eq!(read(b""), report::Report::Other);
}
