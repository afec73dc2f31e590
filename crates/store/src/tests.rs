//! Store tests against a real SQLite file in a temporary directory.

use super::policy::MAX_NUMBER_LEN;
use super::settings::{self, CREDENTIAL_LENGTH, DIGEST_ALGORITHMS};
use super::*;
use pbx::auth::credentials::Credentials;

/// (MD5 HA1, SHA-256 HA1).
fn ha1_pair(user: &str, realm: &str, password: &str) -> (String, String) {
    let c = Credentials::from_password(user, realm, password);
    (
        c.ha1_md5.unwrap_or_default(),
        c.ha1_sha256.unwrap_or_default(),
    )
}

fn ext(number: &str, auth_id: &str) -> ExtensionNew {
    let (ha1_md5, ha1_sha256) = ha1_pair(auth_id, "pbx.test", "secretsecret");
    ExtensionNew {
        number: number.into(),
        display_name: Some(format!("Desk {number}")),
        auth_id: auth_id.into(),
        ha1_md5,
        ha1_sha256,
        realm: "pbx.test".into(),
        email: None,
        digest_algorithms: None,
        ..ExtensionNew::default()
    }
}

fn binding(aor: &str, contact: &str, expires_at: i64) -> Binding {
    Binding {
        aor: aor.into(),
        contact_uri: contact.into(),
        transport: "udp".into(),
        source_addr: "127.0.0.1:5062".into(),
        local_addr: Some("127.0.0.1:5060".into()),
        expires_at,
        call_id: "c1".into(),
        cseq: 1,
        user_agent: Some("test".into()),
        q: None,
    }
}

async fn open(dir: &tempfile::TempDir) -> Db {
    Db::open_in(dir.path()).await.unwrap()
}

#[tokio::test]
async fn extension_crud() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    let created = db.create_extension(ext("100", "a7Kx9Qp2Lm")).await.unwrap();
    assert!(created.enabled);
    assert_eq!(db.get_extension("100").await.unwrap(), created);
    assert_eq!(
        db.extension_by_auth_id("a7Kx9Qp2Lm")
            .await
            .unwrap()
            .unwrap()
            .number,
        "100"
    );
    assert!(db.extension_by_auth_id("100").await.unwrap().is_none());

    db.create_extension(ext("20", "b7Kx9Qp2Lm")).await.unwrap();
    db.create_extension(ext("1000", "c7Kx9Qp2Lm"))
        .await
        .unwrap();
    let numbers: Vec<String> = db
        .list_extensions()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.number)
        .collect();
    assert_eq!(numbers, ["20", "100", "1000"]);

    let patch = ExtensionPatch {
        enabled: Some(false),
        email: Some(Some("a@example.com".into())),
        digest_algorithms: Some(Some("sha-256, md5".into())),
        display_name: Some(None),
        ..Default::default()
    };
    let updated = db.update_extension("100", patch).await.unwrap();
    assert!(!updated.enabled);
    assert_eq!(updated.email.as_deref(), Some("a@example.com"));
    assert_eq!(updated.digest_algorithms.as_deref(), Some("SHA-256,MD5"));
    assert_eq!(updated.display_name, None);
    assert_eq!(updated.auth_id, created.auth_id);

    // An empty patch field leaves the value alone.
    let same = db
        .update_extension("100", ExtensionPatch::default())
        .await
        .unwrap();
    assert_eq!(same.email.as_deref(), Some("a@example.com"));
    assert!(!same.enabled);

    let (m, s) = ha1_pair("a7Kx9Qp2Lm", "pbx.test", "another-password");
    db.set_password_hashes("100", &m, &s, "pbx.test")
        .await
        .unwrap();
    let reset = db.get_extension("100").await.unwrap();
    assert_eq!(reset.ha1_md5, m);
    assert!(reset.password_changed_at >= created.password_changed_at);

    db.remove_extension("100").await.unwrap();
    assert!(
        matches!(db.get_extension("100").await, Err(StoreError::NotFound(w)) if w == "extension 100")
    );
    assert!(matches!(
        db.remove_extension("100").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        db.update_extension("100", ExtensionPatch::default()).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        db.set_password_hashes("100", &m, &s, "x").await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn debug_hides_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    let e = db.create_extension(ext("100", "a7Kx9Qp2Lm")).await.unwrap();
    let dbg = format!("{e:?}");
    assert!(
        !dbg.contains(&e.ha1_md5) && !dbg.contains(&e.ha1_sha256),
        "{dbg}"
    );
}

#[tokio::test]
async fn uniqueness_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    db.create_extension(ext("100", "authone123")).await.unwrap();
    let e = db
        .create_extension(ext("100", "authtwo123"))
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "extension 100 already exists");
    let e = db
        .create_extension(ext("101", "authone123"))
        .await
        .unwrap_err();
    assert!(matches!(&e, StoreError::Conflict(_)));
    assert_eq!(
        e.to_string(),
        "auth ID 'authone123' is already used by extension 100"
    );
    assert_eq!(db.list_extensions().await.unwrap().len(), 1);
}

#[tokio::test]
async fn invalid_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    for bad in ["1", "12345678901", "10a", "", "１２"] {
        let e = db
            .create_extension(ext(bad, "authone123"))
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("extension number must be 2 to 10 digits"),
            "{bad}: {e}"
        );
        assert!(e.is_user_error());
    }
    let e = db.create_extension(ext("100", "100")).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("must differ from the extension number"),
        "{e}"
    );
    for bad in ["a b", "a:b", "a\"b", ""] {
        assert!(
            matches!(
                db.create_extension(ext("100", bad)).await,
                Err(StoreError::Invalid(_))
            ),
            "{bad}"
        );
    }
    let mut e = ext("100", "authone123");
    e.ha1_md5 = "XYZ".into();
    assert!(matches!(
        db.create_extension(e).await,
        Err(StoreError::Invalid(_))
    ));
    let mut e = ext("100", "authone123");
    e.email = Some("no-at-sign".into());
    assert!(matches!(
        db.create_extension(e).await,
        Err(StoreError::Invalid(_))
    ));
    let mut e = ext("100", "authone123");
    e.digest_algorithms = Some("SHA-1".into());
    let err = db.create_extension(e).await.unwrap_err();
    assert!(err.to_string().contains("MD5, SHA-256"), "{err}");
    assert!(db.list_extensions().await.unwrap().is_empty());
}

#[tokio::test]
async fn durable_across_reopen_and_migrations_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    db.create_extension(ext("100", "authone123")).await.unwrap();
    db.set_setting(DIGEST_ALGORITHMS, "SHA-256,MD5")
        .await
        .unwrap();
    db.append_event(&SecurityEvent {
        at: 5,
        kind: "ban".into(),
        reason: "r".into(),
        source: "s".into(),
        user: None,
        detail: None,
    })
    .await
    .unwrap();
    let version = db.current_version().await.unwrap();
    db.close().await;
    db.close().await;

    // Reopen twice: migrations already applied are skipped, data is all there.
    for _ in 0..2 {
        let db = Db::open_existing(&dir.path().join(DB_FILE)).await.unwrap();
        assert_eq!(db.get_extension("100").await.unwrap().auth_id, "authone123");
        assert_eq!(db.digest_algorithms().await.unwrap(), ["SHA-256", "MD5"]);
        assert_eq!(db.list_events(None, None, 10).await.unwrap().len(), 1);
        assert_eq!(db.current_version().await.unwrap(), version);
        db.close().await;
    }
}

#[tokio::test]
async fn open_existing_refuses_a_missing_database() {
    let dir = tempfile::tempdir().unwrap();
    let e = Db::open_existing(&dir.path().join("nope").join(DB_FILE))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Missing(_)));
    assert!(!dir.path().join("nope").exists());
}

#[tokio::test]
async fn new_database_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db = Db::open_in(&data).await.unwrap();
    db.close().await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join(DB_FILE)), 0o600);
}

#[tokio::test]
async fn every_admin_write_bumps_the_version() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    let mut last = db.current_version().await.unwrap();
    let mut bumped = async |db: &Db| {
        let v = db.current_version().await.unwrap();
        assert!(v > last, "{v} > {last}");
        last = v;
    };
    db.create_extension(ext("100", "authone123")).await.unwrap();
    bumped(&db).await;
    db.update_extension(
        "100",
        ExtensionPatch {
            enabled: Some(false),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    bumped(&db).await;
    let (m, s) = ha1_pair("authone123", "r", "p");
    db.set_password_hashes("100", &m, &s, "r").await.unwrap();
    bumped(&db).await;
    db.set_setting(CREDENTIAL_LENGTH, "12").await.unwrap();
    bumped(&db).await;
    db.remove_extension("100").await.unwrap();
    bumped(&db).await;
    // A failed write does not.
    assert!(db.remove_extension("100").await.is_err());
    assert_eq!(db.current_version().await.unwrap(), last);
    assert!(db.set_setting(settings::CONFIG_VERSION, "0").await.is_err());
}

#[tokio::test]
async fn settings_defaults_and_validation() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    assert_eq!(db.digest_algorithms().await.unwrap(), ["MD5"]);
    assert_eq!(db.credential_length().await.unwrap(), 10);
    assert_eq!(db.domain().await.unwrap(), settings::default_domain());
    assert_eq!(db.get_setting("nope").await.unwrap(), None);

    assert_eq!(
        settings::normalize(DIGEST_ALGORITHMS, "sha-256 , MD5").unwrap(),
        "SHA-256,MD5"
    );
    let e = settings::normalize(DIGEST_ALGORITHMS, "SHA-1")
        .unwrap_err()
        .to_string();
    assert!(e.contains("'SHA-1'") && e.contains("MD5, SHA-256"), "{e}");
    assert!(settings::normalize(DIGEST_ALGORITHMS, "MD5,MD5").is_err());
    assert!(settings::normalize(DIGEST_ALGORITHMS, "").is_err());
    assert_eq!(settings::normalize(CREDENTIAL_LENGTH, "50").unwrap(), "50");
    for bad in ["9", "51", "x", "-10"] {
        let e = settings::normalize(CREDENTIAL_LENGTH, bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("from 10 to 50"), "{e}");
    }
    assert_eq!(
        settings::normalize(settings::DOMAIN, "PBX.Example.com").unwrap(),
        "pbx.example.com"
    );
    assert!(settings::normalize(settings::DOMAIN, "a b").is_err());
    assert!(
        settings::normalize("colour", "red")
            .unwrap_err()
            .to_string()
            .contains("digest_algorithms")
    );

    db.set_setting(CREDENTIAL_LENGTH, "20").await.unwrap();
    db.set_setting(CREDENTIAL_LENGTH, "30").await.unwrap();
    assert_eq!(db.credential_length().await.unwrap(), 30);
    assert_eq!(
        db.get_setting(CREDENTIAL_LENGTH).await.unwrap().as_deref(),
        Some("30")
    );
}

#[tokio::test]
async fn event_filtering() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    for (at, kind) in [
        (1000, "auth_failure"),
        (2000, "ban"),
        (3000, "auth_failure"),
        (4000, "challenge"),
    ] {
        let user = Some("x".repeat(10_000));
        let e = SecurityEvent {
            at,
            kind: kind.into(),
            reason: "r".into(),
            source: "1.2.3.4:5060".into(),
            user,
            detail: None,
        };
        db.append_event(&e).await.unwrap();
    }
    let at = |v: Vec<StoredEvent>| v.into_iter().map(|e| e.at).collect::<Vec<_>>();
    assert_eq!(
        at(db.list_events(None, None, 100).await.unwrap()),
        [4000, 3000, 2000, 1000]
    );
    assert_eq!(
        at(db.list_events(Some(2000), None, 100).await.unwrap()),
        [4000, 3000, 2000]
    );
    assert_eq!(
        at(db
            .list_events(None, Some("auth_failure"), 100)
            .await
            .unwrap()),
        [3000, 1000]
    );
    assert_eq!(
        at(db
            .list_events(Some(1500), Some("auth_failure"), 100)
            .await
            .unwrap()),
        [3000]
    );
    assert_eq!(
        at(db.list_events(None, None, 2).await.unwrap()),
        [4000, 3000]
    );
    assert!(
        db.list_events(None, Some("nope"), 100)
            .await
            .unwrap()
            .is_empty()
    );
    // Attacker-controlled fields are bounded.
    let e = &db.list_events(None, None, 1).await.unwrap()[0];
    assert_eq!(e.user.as_ref().map(String::len), Some(512));
    assert_eq!(db.prune_events(3000).await.unwrap(), 2);
    assert_eq!(
        at(db.list_events(None, None, 100).await.unwrap()),
        [4000, 3000]
    );
}

#[tokio::test]
async fn registrations_upsert_list_and_purge_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    db.create_extension(ext("100", "authone123")).await.unwrap();
    db.create_extension(ext("101", "authtwo123")).await.unwrap();
    db.upsert_binding(&binding("100", "sip:100@10.0.0.1", 1_000))
        .await
        .unwrap();
    db.upsert_binding(&Binding {
        q: Some(900),
        ..binding("100", "sip:100@10.0.0.2", 2_000)
    })
    .await
    .unwrap();
    db.upsert_binding(&binding("101", "sip:101@10.0.0.3", 3_000))
        .await
        .unwrap();
    // Refresh: same AoR and contact, new expiry and CSeq.
    db.upsert_binding(&Binding {
        cseq: 2,
        ..binding("100", "sip:100@10.0.0.1", 1_500)
    })
    .await
    .unwrap();
    assert_eq!(db.list_bindings().await.unwrap().len(), 3);
    let for100 = db.list_bindings_for("100").await.unwrap();
    assert_eq!(for100.len(), 2);
    assert_eq!((for100[0].expires_at, for100[0].cseq), (1_500, 2));
    assert_eq!(for100[1].q, Some(900));

    // Unknown AoR.
    assert!(matches!(
        db.upsert_binding(&binding("999", "sip:x@y", 1)).await,
        Err(StoreError::NotFound(_))
    ));

    assert_eq!(db.purge_expired_bindings(1_499).await.unwrap(), 0);
    assert_eq!(db.purge_expired_bindings(1_500).await.unwrap(), 1);
    assert_eq!(db.list_bindings_for("100").await.unwrap().len(), 1);

    assert!(db.remove_binding("100", "sip:100@10.0.0.2").await.unwrap());
    assert!(!db.remove_binding("100", "sip:100@10.0.0.2").await.unwrap());
    db.upsert_binding(&binding("101", "sip:101@10.0.0.4", 3_000))
        .await
        .unwrap();
    assert_eq!(db.remove_all_bindings("101").await.unwrap(), 2);

    // Removing an extension removes its bindings.
    db.upsert_binding(&binding("100", "sip:100@10.0.0.1", 9_000))
        .await
        .unwrap();
    db.remove_extension("100").await.unwrap();
    assert!(db.list_bindings().await.unwrap().is_empty());
}

#[tokio::test]
async fn write_behind_batches() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    db.create_extension(ext("100", "authid100x")).await.unwrap();
    let changes = vec![
        BindingChange::Upsert(binding("100", "sip:a@h", 2_000)),
        BindingChange::Upsert(binding("100", "sip:b@h", 2_000)),
        // the extension of this one does not exist: skipped, not an error
        BindingChange::Upsert(binding("999", "sip:z@h", 2_000)),
        BindingChange::Remove {
            aor: "100".into(),
            contact_uri: "sip:a@h".into(),
        },
        BindingChange::Upsert(binding("100", "sip:b@h", 3_000)),
    ];
    db.apply_binding_changes(&changes).await.unwrap();
    let list = db.list_bindings().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].contact_uri.as_str(), list[0].expires_at),
        ("sip:b@h", 3_000)
    );

    let events: Vec<SecurityEvent> = (0..500)
        .map(|i| SecurityEvent {
            at: i,
            kind: if i % 2 == 0 {
                "auth_challenge".into()
            } else {
                "auth_failure".into()
            },
            reason: "r".into(),
            source: "127.0.0.1:1".into(),
            user: None,
            detail: None,
        })
        .collect();
    db.append_events(&events).await.unwrap();
    assert_eq!(
        db.list_events(None, Some("auth_failure"), 10_000)
            .await
            .unwrap()
            .len(),
        250
    );
}

fn ip_rule(net: &str, action: &str, expires_at: Option<i64>) -> IpRule {
    IpRule {
        net: net.into(),
        action: action.into(),
        expires_at,
        note: Some("office".into()),
        origin: "manual".into(),
        reason: None,
        created_at: 1_000,
    }
}

#[tokio::test]
async fn ip_rules_crud_and_canonical_nets() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    assert!(db.list_ip_rules().await.unwrap().is_empty());

    // Stored in canonical form, whatever form they were given in.
    for (given, stored) in [
        ("10.1.2.3/8", "10.0.0.0/8"),
        (" 203.0.113.7 ", "203.0.113.7/32"),
        ("2001:DB8:0:0::1/32", "2001:db8::/32"),
        ("2001:db8::1", "2001:db8::1/128"),
    ] {
        assert_eq!(
            db.upsert_ip_rule(&ip_rule(given, "block", None), true)
                .await
                .unwrap(),
            None
        );
        let got = db.get_ip_rule(stored).await.unwrap().unwrap();
        assert_eq!(got.net, stored);
        assert_eq!(db.get_ip_rule(given).await.unwrap(), Some(got));
    }
    let nets: Vec<String> = db
        .list_ip_rules()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.net)
        .collect();
    assert_eq!(
        nets,
        [
            "10.0.0.0/8",
            "2001:db8::/32",
            "2001:db8::1/128",
            "203.0.113.7/32"
        ]
    );

    // Same prefix again: replaced, and the old entry is returned.
    let mut allow = ip_rule("10.9.9.9/8", "allow", Some(5_000));
    allow.note = None;
    let old = db.upsert_ip_rule(&allow, true).await.unwrap().unwrap();
    assert_eq!(
        (old.action.as_str(), old.note.as_deref()),
        ("block", Some("office"))
    );
    let now = db.get_ip_rule("10.0.0.0/8").await.unwrap().unwrap();
    assert_eq!(
        (now.action.as_str(), now.expires_at, now.note.as_deref()),
        ("allow", Some(5_000), None)
    );
    assert_eq!(db.list_ip_rules().await.unwrap().len(), 4);

    // The guard's form round-trips.
    let rule = now.to_rule().unwrap();
    assert_eq!(rule.net.to_string(), "10.0.0.0/8");
    assert_eq!(rule.action, guard::Action::Allow);
    assert_eq!(IpRule::from_rule(&rule), now);

    assert!(db.remove_ip_rule("10.0.0.0/8").await.unwrap());
    assert!(!db.remove_ip_rule("10.0.0.0/8").await.unwrap());
    assert!(db.remove_ip_rule("2001:db8::1").await.unwrap());
    assert_eq!(db.list_ip_rules().await.unwrap().len(), 2);

    // Bans survive a reopen.
    db.close().await;
    let db = open(&dir).await;
    assert_eq!(db.list_ip_rules().await.unwrap().len(), 2);
}

#[tokio::test]
async fn ip_rules_validation() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    let e = db
        .upsert_ip_rule(&ip_rule("10.0.0.0/33", "block", None), true)
        .await
        .unwrap_err();
    assert!(e.is_user_error());
    assert!(
        e.to_string()
            .contains("`10.0.0.0/33` is not an IP address or CIDR prefix (examples:"),
        "{e}"
    );
    for bad in ["", "example.com", "10.0.0", "1.2.3.4/-1", "::g"] {
        assert!(
            db.upsert_ip_rule(&ip_rule(bad, "block", None), true)
                .await
                .is_err(),
            "{bad}"
        );
        assert!(db.remove_ip_rule(bad).await.is_err(), "{bad}");
    }
    let e = db
        .upsert_ip_rule(&ip_rule("10.0.0.1", "deny", None), true)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("'allow' or 'block'"), "{e}");
    let mut r = ip_rule("10.0.0.1", "block", None);
    r.origin = "robot".into();
    let e = db.upsert_ip_rule(&r, true).await.unwrap_err().to_string();
    assert!(e.contains("'manual' or 'auto'"), "{e}");
    r.origin = "auto".into();
    assert!(
        db.upsert_ip_rule(&r, false).await.is_err(),
        "auto needs a reason"
    );
    r.reason = Some("flood".into());
    r.note = Some("x".repeat(257));
    assert!(db.upsert_ip_rule(&r, false).await.is_err());
    r.note = Some("two\nlines".into());
    assert!(db.upsert_ip_rule(&r, false).await.is_err());
    r.note = None;
    db.upsert_ip_rule(&r, false).await.unwrap();
    assert!(db.list_ip_rules().await.unwrap()[0].is_auto());
}

#[tokio::test]
async fn ip_rule_writes_bump_the_version_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    let v0 = db.current_version().await.unwrap();
    // The server's own automatic ban: no bump (it already applies it).
    let mut ban = ip_rule("198.51.100.9", "block", Some(10_000));
    ban.origin = "auto".into();
    ban.reason = Some("auth_failures".into());
    db.upsert_ip_rule(&ban, false).await.unwrap();
    assert_eq!(db.current_version().await.unwrap(), v0);
    // An administrator's entry: bump.
    db.upsert_ip_rule(&ip_rule("198.51.100.0/24", "allow", None), true)
        .await
        .unwrap();
    let v1 = db.current_version().await.unwrap();
    assert!(v1 > v0);
    // Removing, manual or automatic (unban): bump; removing nothing: no bump.
    assert!(db.remove_ip_rule("198.51.100.9/32").await.unwrap());
    let v2 = db.current_version().await.unwrap();
    assert!(v2 > v1);
    assert!(!db.remove_ip_rule("198.51.100.9/32").await.unwrap());
    assert_eq!(db.current_version().await.unwrap(), v2);
    // Invalid writes: no bump.
    assert!(
        db.upsert_ip_rule(&ip_rule("nope", "block", None), true)
            .await
            .is_err()
    );
    assert_eq!(db.current_version().await.unwrap(), v2);
}

#[tokio::test]
async fn expired_ip_rules_are_purged_without_bump() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    db.upsert_ip_rule(&ip_rule("192.0.2.1", "block", Some(1_000)), true)
        .await
        .unwrap();
    db.upsert_ip_rule(&ip_rule("192.0.2.2", "block", Some(2_000)), true)
        .await
        .unwrap();
    db.upsert_ip_rule(&ip_rule("192.0.2.3", "allow", None), true)
        .await
        .unwrap();
    let rules = db.list_ip_rules().await.unwrap();
    assert!(!rules[0].is_live(1_000) && rules[0].is_live(999));
    assert!(rules[2].is_live(i64::MAX));
    let v = db.current_version().await.unwrap();
    assert_eq!(db.purge_expired_ip_rules(999).await.unwrap(), 0);
    assert_eq!(db.purge_expired_ip_rules(1_000).await.unwrap(), 1);
    assert_eq!(db.purge_expired_ip_rules(1_000_000).await.unwrap(), 1);
    assert_eq!(db.current_version().await.unwrap(), v);
    let left: Vec<String> = db
        .list_ip_rules()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.net)
        .collect();
    assert_eq!(left, ["192.0.2.3/32"]);
}

#[tokio::test]
async fn manual_ip_rules_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    let Db::Sqlite(pool) = &db;
    // Fill up to the cap directly (one statement), then go through the API.
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $1) \
         INSERT INTO ip_rules (net, action, origin, created_at) \
         SELECT '10.' || (i / 65536) || '.' || (i / 256 % 256) || '.' || (i % 256) || '/32', 'block', 'manual', 0 \
         FROM n",
    )
    .bind(MAX_MANUAL_IP_RULES)
    .execute(pool)
    .await
    .unwrap();
    let e = db
        .upsert_ip_rule(&ip_rule("192.0.2.1", "block", None), true)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("100000 manual entries") && e.contains("remove some"),
        "{e}"
    );
    // Replacing an existing manual entry and automatic bans are still fine.
    db.upsert_ip_rule(&ip_rule("10.0.0.5", "allow", None), true)
        .await
        .unwrap();
    let mut ban = ip_rule("192.0.2.1", "block", None);
    ban.origin = "auto".into();
    ban.reason = Some("flood".into());
    db.upsert_ip_rule(&ban, false).await.unwrap();
    // Turning that automatic ban into a manual entry would add one: refused.
    assert!(
        db.upsert_ip_rule(&ip_rule("192.0.2.1", "block", None), true)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn guard_settings_are_validated_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    assert!(db.guard_settings().await.unwrap().is_empty());
    assert_eq!(
        settings::normalize("auth_failures_before_ban", " 3 ").unwrap(),
        "3"
    );
    for (key, bad, limits) in [
        ("auth_failures_before_ban", "2", "from 3 to 1000000"),
        (
            "unanswered_challenges_before_ban",
            "99",
            "from 100 to 1000000",
        ),
        ("ban_seconds", "1000000001", "from 1 to 1000000000"),
        ("throttle_seconds", "x", "from 1 to 3600"),
    ] {
        let e = settings::normalize(key, bad).unwrap_err().to_string();
        assert_eq!(
            e,
            format!("{key} must be a whole number {limits}, got `{bad}`")
        );
    }
    let e = settings::normalize("colour", "red")
        .unwrap_err()
        .to_string();
    assert!(e.contains("flood_red_pps") && e.contains("domain"), "{e}");

    db.set_setting("auth_failures_before_ban", "3")
        .await
        .unwrap();
    db.set_setting("ban_seconds", "60").await.unwrap();
    let stored = db.guard_settings().await.unwrap();
    assert_eq!(
        stored,
        [
            ("auth_failures_before_ban".to_string(), "3".to_string()),
            ("ban_seconds".to_string(), "60".to_string())
        ]
    );
    let c = guard::GuardConfig::from_settings(stored.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .unwrap();
    assert_eq!((c.auth_failures_before_ban, c.ban_seconds), (3, 60));

    // flood_red_pps must stay above flood_amber_pps, against the stored value or the default (amber 1000).
    let v = db.current_version().await.unwrap();
    let e = db
        .set_setting("flood_red_pps", "1000")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("flood_red_pps (1000) must be greater than flood_amber_pps (1000)")
            && e.contains("flood_amber_pps 10 to 10000000"),
        "{e}"
    );
    assert_eq!(db.current_version().await.unwrap(), v, "refused: no write");
    db.set_setting("flood_red_pps", "1001").await.unwrap();
    let e = db
        .set_setting("flood_amber_pps", "2000")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("flood_red_pps (1001) must be greater than flood_amber_pps (2000)"),
        "{e}"
    );
    db.set_setting("flood_amber_pps", "500").await.unwrap();
    assert_eq!(
        db.get_setting("flood_amber_pps").await.unwrap().as_deref(),
        Some("500")
    );
}

fn cdr(call_id: &str, caller: &str, callee: &str, started_at: i64) -> CdrRow {
    CdrRow {
        call_id: call_id.into(),
        caller: caller.into(),
        callee: callee.into(),
        started_at,
        answered_at: Some(started_at + 2_000),
        ended_at: started_at + 62_000,
        duration_secs: 60,
        disposition: "answered".into(),
        hung_up_by: "caller".into(),
        reason: "bye".into(),
    }
}

fn active(call_id: &str, started_at: i64, state: &str) -> ActiveCallRow {
    ActiveCallRow {
        call_id: call_id.into(),
        caller: "100".into(),
        callee: "200".into(),
        started_at,
        answered_at: (state == "talking").then_some(started_at + 1_000),
        state: state.into(),
    }
}

#[tokio::test]
async fn cdrs_append_and_list_with_filters() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    assert!(db.list_cdrs(None, None, 100).await.unwrap().is_empty());
    db.append_cdrs(&[]).await.unwrap();

    let mut busy = cdr("c2", "200", "300", 2_000);
    busy.answered_at = None;
    busy.duration_secs = 0;
    busy.disposition = "busy".into();
    busy.hung_up_by = "callee".into();
    busy.reason = "486".into();
    // Out of time order, and two with the same start: newest first, then the later insertion first.
    db.append_cdrs(&[cdr("c1", "100", "200", 1_000), busy.clone()])
        .await
        .unwrap();
    db.append_cdrs(&[
        cdr("c4", "300", "100", 4_000),
        cdr("c3", "100", "300", 3_000),
    ])
    .await
    .unwrap();
    db.append_cdrs(&[cdr("c3b", "400", "500", 3_000)])
        .await
        .unwrap();

    let ids =
        |list: Vec<StoredCdr>| -> Vec<String> { list.into_iter().map(|c| c.cdr.call_id).collect() };
    assert_eq!(
        ids(db.list_cdrs(None, None, 100).await.unwrap()),
        ["c4", "c3b", "c3", "c2", "c1"]
    );
    // Round trip of every field, ids increasing with insertion.
    let all = db.list_cdrs(None, None, 100).await.unwrap();
    let stored_busy = all.iter().find(|c| c.cdr.call_id == "c2").unwrap();
    assert_eq!(stored_busy.cdr, busy);
    let c1 = all.iter().find(|c| c.cdr.call_id == "c1").unwrap();
    assert!(c1.id < stored_busy.id);

    // Limit keeps the newest.
    assert_eq!(
        ids(db.list_cdrs(None, None, 2).await.unwrap()),
        ["c4", "c3b"]
    );
    assert!(db.list_cdrs(None, None, 0).await.unwrap().is_empty());
    // Since is inclusive.
    assert_eq!(
        ids(db.list_cdrs(Some(3_000), None, 100).await.unwrap()),
        ["c4", "c3b", "c3"]
    );
    // Extension as caller or callee, combined with since and limit; an extension in both columns of one row
    // would appear once.
    assert_eq!(
        ids(db.list_cdrs(None, Some("100"), 100).await.unwrap()),
        ["c4", "c3", "c1"]
    );
    assert_eq!(
        ids(db.list_cdrs(Some(2_000), Some("100"), 100).await.unwrap()),
        ["c4", "c3"]
    );
    assert_eq!(
        ids(db.list_cdrs(None, Some("300"), 2).await.unwrap()),
        ["c4", "c3"]
    );
    db.append_cdrs(&[cdr("self", "100", "100", 5_000)])
        .await
        .unwrap();
    assert_eq!(
        ids(db.list_cdrs(Some(5_000), Some("100"), 100).await.unwrap()),
        ["self"]
    );
    assert!(
        db.list_cdrs(None, Some("999"), 100)
            .await
            .unwrap()
            .is_empty()
    );
    // Appending call records is not configuration.
    assert_eq!(db.current_version().await.unwrap(), 0);
}

#[tokio::test]
async fn cdr_limit_is_capped() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    let rows: Vec<CdrRow> = (0..(MAX_CDR_LIST as i64 + 5))
        .map(|i| cdr(&format!("c{i}"), "100", "200", i))
        .collect();
    db.append_cdrs(&rows).await.unwrap();
    let list = db.list_cdrs(None, None, u32::MAX).await.unwrap();
    assert_eq!(list.len(), MAX_CDR_LIST as usize);
    assert_eq!(list[0].cdr.started_at, MAX_CDR_LIST as i64 + 4);
}

#[tokio::test]
async fn cdr_fields_are_validated_and_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;

    // An unknown disposition or side fails the whole batch, before anything is written.
    let mut bad = cdr("bad", "100", "200", 2_000);
    bad.disposition = "exploded".into();
    let e = db
        .append_cdrs(&[cdr("ok", "100", "200", 1_000), bad])
        .await
        .unwrap_err();
    assert!(e.is_user_error());
    assert!(e.to_string().contains("no_answer"), "{e}");
    let mut bad = cdr("bad", "100", "200", 2_000);
    bad.hung_up_by = "nobody".into();
    assert!(db.append_cdrs(&[bad]).await.unwrap_err().is_user_error());
    assert!(db.list_cdrs(None, None, 100).await.unwrap().is_empty());

    // Attacker-controlled text: truncated to 256 bytes on a character boundary, control characters replaced.
    let mut long = cdr(&"x".repeat(10_000), "100", &"é".repeat(300), 1_000);
    long.reason = "bye\x1b[2J\r\nforged".into();
    long.duration_secs = -5;
    db.append_cdrs(&[long]).await.unwrap();
    let stored = &db.list_cdrs(None, None, 1).await.unwrap()[0].cdr;
    assert_eq!(stored.call_id, "x".repeat(256));
    assert_eq!(stored.callee, "é".repeat(128));
    assert_eq!(stored.reason, "bye\u{FFFD}[2J\u{FFFD}\u{FFFD}forged");
    assert_eq!(stored.duration_secs, 0);
    // Empty callee (a request with no readable number) is kept as is.
    db.append_cdrs(&[cdr("nf", "100", "", 2_000)])
        .await
        .unwrap();
    assert_eq!(db.list_cdrs(None, None, 1).await.unwrap()[0].cdr.callee, "");
}

#[tokio::test]
async fn active_calls_are_replaced_as_a_set() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    assert!(db.list_active_calls().await.unwrap().is_empty());
    assert_eq!(db.clear_active_calls().await.unwrap(), 0);

    let before = now_ms();
    db.replace_active_calls(&[active("b", 2_000, "ringing"), active("a", 1_000, "talking")])
        .await
        .unwrap();
    let list = db.list_active_calls().await.unwrap();
    let ids: Vec<&str> = list.iter().map(|c| c.call.call_id.as_str()).collect();
    assert_eq!(ids, ["a", "b"], "oldest first");
    assert_eq!(list[0].call, active("a", 1_000, "talking"));
    assert!(list.iter().all(|c| c.updated_at >= before));

    // The new set replaces the old one entirely (a ended, b answered, c new); duplicates keep the last.
    db.replace_active_calls(&[
        active("b", 2_000, "answering"),
        active("c", 3_000, "ringing"),
        active("c", 3_000, "talking"),
    ])
    .await
    .unwrap();
    let list = db.list_active_calls().await.unwrap();
    let got: Vec<(&str, &str)> = list
        .iter()
        .map(|c| (c.call.call_id.as_str(), c.call.state.as_str()))
        .collect();
    assert_eq!(got, [("b", "answering"), ("c", "talking")]);

    // An invalid state changes nothing.
    let e = db
        .replace_active_calls(&[active("d", 4_000, "ringing"), active("e", 5_000, "on_fire")])
        .await
        .unwrap_err();
    assert!(
        e.is_user_error() && e.to_string().contains("talking"),
        "{e}"
    );
    assert_eq!(db.list_active_calls().await.unwrap().len(), 2);

    // Cleaned like call records.
    db.replace_active_calls(&[active(&"\u{7}".repeat(1_000), 1, "ringing")])
        .await
        .unwrap();
    let list = db.list_active_calls().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].call.call_id, "\u{FFFD}".repeat(256));

    // An empty set empties the table; clear does too and says how many it dropped. No version bump.
    db.replace_active_calls(&[]).await.unwrap();
    assert!(db.list_active_calls().await.unwrap().is_empty());
    db.replace_active_calls(&[active("x", 1, "ringing"), active("y", 2, "ringing")])
        .await
        .unwrap();
    assert_eq!(db.clear_active_calls().await.unwrap(), 2);
    assert!(db.list_active_calls().await.unwrap().is_empty());
    assert_eq!(db.current_version().await.unwrap(), 0);
}

#[tokio::test]
async fn extension_security_flags() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    // Defaults: any transport, SRTP when offered over TLS.
    let plain = db.create_extension(ext("100", "sec1abcdef")).await.unwrap();
    assert!(!plain.require_tls);
    assert_eq!(plain.srtp, SrtpMode::Enabled);
    assert_eq!(db.get_extension("100").await.unwrap(), plain);

    let secure = db
        .create_extension(ExtensionNew {
            require_tls: true,
            srtp: SrtpMode::Enforced,
            ..ext("101", "sec2abcdef")
        })
        .await
        .unwrap();
    assert!(secure.require_tls);
    assert_eq!(db.get_extension("101").await.unwrap(), secure);
    db.create_extensions(vec![ExtensionNew {
        srtp: SrtpMode::Disabled,
        ..ext("102", "sec3abcdef")
    }])
    .await
    .unwrap();
    assert_eq!(
        db.get_extension("102").await.unwrap().srtp,
        SrtpMode::Disabled
    );

    let before = db.current_version().await.unwrap();
    let patch = ExtensionPatch {
        require_tls: Some(true),
        srtp: Some(" Enforced".into()),
        ..Default::default()
    };
    assert!(!patch.is_empty());
    let updated = db.update_extension("100", patch).await.unwrap();
    assert!(updated.require_tls);
    assert_eq!(updated.srtp, SrtpMode::Enforced);
    assert!(db.current_version().await.unwrap() > before);
    // Other fields are left alone, and so are these when not named.
    assert_eq!(updated.auth_id, plain.auth_id);
    let same = db
        .update_extension(
            "100",
            ExtensionPatch {
                enabled: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(same.require_tls);
    assert_eq!(same.srtp, SrtpMode::Enforced);
    let back = db
        .update_extension(
            "100",
            ExtensionPatch {
                require_tls: Some(false),
                srtp: Some("disabled".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(!back.require_tls);
    assert_eq!(back.srtp, SrtpMode::Disabled);

    // An unknown mode is refused with the allowed values, and nothing changes.
    let version = db.current_version().await.unwrap();
    let err = db
        .update_extension(
            "100",
            ExtensionPatch {
                srtp: Some("mandatory".into()),
                require_tls: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    assert!(
        err.to_string().contains("disabled, enabled or enforced"),
        "{err}"
    );
    assert_eq!(db.current_version().await.unwrap(), version);
    assert!(!db.get_extension("100").await.unwrap().require_tls);

    // The database refuses a bad value written behind the store's back.
    let Db::Sqlite(pool) = &db;
    assert!(
        sqlx::query("UPDATE extensions SET srtp = 'maybe' WHERE number = '100'")
            .execute(pool)
            .await
            .is_err()
    );
    assert_eq!(SrtpMode::default(), SrtpMode::Enabled);
    assert_eq!("ENFORCED".parse::<SrtpMode>().unwrap(), SrtpMode::Enforced);
    assert_eq!(SrtpMode::Enforced.to_string(), "enforced");
}

#[tokio::test]
async fn security_flags_default_for_existing_extensions() {
    // An extension made before migration 0004 gets require_tls = 0 and srtp = 'enabled'.
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    let Db::Sqlite(pool) = &db;
    let (m, s) = ha1_pair("oldabcdefg", "pbx.test", "secretsecret");
    sqlx::query(
        "INSERT INTO extensions (number, enabled, auth_id, ha1_md5, ha1_sha256, realm, created_at, updated_at, \
         password_changed_at) VALUES ('200', 1, 'oldabcdefg', $1, $2, 'pbx.test', 0, 0, 0)",
    )
    .bind(m)
    .bind(s)
    .execute(pool)
    .await
    .unwrap();
    let e = db.get_extension("200").await.unwrap();
    assert!(!e.require_tls);
    assert_eq!(e.srtp, SrtpMode::Enabled);
}

#[tokio::test]
async fn extension_restriction_flags_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    let plain = db.create_extension(ext("201", "flagsabcde")).await.unwrap();
    assert!(
        !plain.internal_only
            && !plain.pin_protect
            && !plain.lan_only
            && !plain.block_remote_ws
            && !plain.office_hours_only
    );
    let created = db
        .create_extension(ExtensionNew {
            internal_only: true,
            block_remote_ws: true,
            ..ext("202", "flagsfghij")
        })
        .await
        .unwrap();
    assert!(created.internal_only && created.block_remote_ws && !created.pin_protect);
    assert_eq!(db.get_extension("202").await.unwrap(), created);

    let before = db.current_version().await.unwrap();
    let patch = ExtensionPatch {
        pin_protect: Some(true),
        lan_only: Some(true),
        office_hours_only: Some(true),
        ..Default::default()
    };
    assert!(!patch.is_empty());
    let updated = db.update_extension("201", patch).await.unwrap();
    assert!(updated.pin_protect && updated.lan_only && updated.office_hours_only);
    assert!(!updated.internal_only && !updated.block_remote_ws);
    assert!(db.current_version().await.unwrap() > before);
    assert_eq!(db.get_extension("201").await.unwrap(), updated);
    // Flags not named are left alone.
    let same = db
        .update_extension(
            "201",
            ExtensionPatch {
                enabled: Some(false),
                internal_only: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(same.pin_protect && same.lan_only && same.office_hours_only && same.internal_only);
    let off = db
        .update_extension(
            "201",
            ExtensionPatch {
                pin_protect: Some(false),
                lan_only: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(!off.pin_protect && !off.lan_only && off.office_hours_only);

    let r = off.caller_restrictions();
    assert_eq!(r.number, "201");
    assert!(r.internal_only && !r.pin_protect && r.office_hours_only);
    assert_eq!(r.unlocked_until, None);
    // Listed too.
    let listed = db.list_extensions().await.unwrap();
    assert_eq!(listed[0], off);
}

#[tokio::test]
async fn policy_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    let c = db.policy_settings().await.unwrap();
    assert_eq!(c, PolicyConfig::default());
    assert_eq!(c.country_code, "");
    assert_eq!(c.international_prefix, "00");
    assert_eq!(c.national_prefix, "0");
    assert_eq!(c.emergency_numbers, ["112", "911", "999"]);
    assert_eq!(c.pin_unlock_seconds, 3600);
    assert_eq!(
        c.pin_unlock_duration(),
        std::time::Duration::from_secs(3600)
    );
    assert_eq!(c.local_networks.len(), 6);
    assert!(c.local_networks.contains(&"192.168.0.0/16".to_string()));
    assert!(c.local_networks.contains(&"fc00::/7".to_string()));
    assert!(c.rules.is_empty());
    // Not configured: deny every external call, but say how to fix it.
    let warning = c.not_configured().unwrap();
    assert!(
        warning.contains("palisade policy set country_code"),
        "{warning}"
    );
    let s = c.to_settings().unwrap();
    assert!(s.allowed_country_codes.is_empty());
    assert!(s.office_hours.is_none());
    assert_eq!(s.emergency_numbers, ["112", "911", "999"]);
}

#[tokio::test]
async fn policy_settings_are_validated_and_applied() {
    use super::policy::*;
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    let set = |k: &'static str, v: &'static str| {
        let db = db.clone();
        async move {
            let v = settings::normalize(k, v)?;
            db.set_setting(k, &v).await?;
            Ok::<String, StoreError>(v)
        }
    };
    let err = |r: Result<String>| match r {
        Err(StoreError::Invalid(m)) => m,
        other => panic!("expected Invalid, got {other:?}"),
    };

    // Country codes: exact ITU codes only, the error names the allowed form.
    let m = err(set(COUNTRY_CODE, "4").await);
    assert!(m.contains("1 to 3 digits") && m.contains("40"), "{m}");
    let m = err(set(COUNTRY_CODE, "4a").await);
    assert!(m.contains("expected 1 to 3 digits"), "{m}");
    assert!(err(set(COUNTRY_CODE, "").await).contains("country_code"));
    assert_eq!(set(COUNTRY_CODE, " +49 ").await.unwrap(), "49");
    assert_eq!(
        set(ALLOWED_COUNTRY_CODES, "44, +33,44").await.unwrap(),
        "44,33"
    );
    let m = err(set(ALLOWED_COUNTRY_CODES, "44,25").await);
    assert!(m.contains("25 is not a country calling code"), "{m}");
    assert!(err(set(INTERNATIONAL_PREFIX, "").await).contains("1 to 4 digits"));
    assert_eq!(set(INTERNATIONAL_PREFIX, "011").await.unwrap(), "011");
    assert_eq!(set(NATIONAL_PREFIX, "").await.unwrap(), "");
    assert!(err(set(NATIONAL_PREFIX, "x").await).contains("0 to 4 digits"));
    let m = err(set(EMERGENCY_NUMBERS, "").await);
    assert!(m.contains("112,911,999"), "{m}");
    assert!(err(set(EMERGENCY_NUMBERS, "112,9-1-1").await).contains("1 to 15 digits"));
    assert_eq!(
        set(EMERGENCY_NUMBERS, "112, 110,112").await.unwrap(),
        "112,110"
    );
    assert!(err(set(PIN_UNLOCK_SECONDS, "59").await).contains("60 to 86400"));
    assert!(err(set(PIN_UNLOCK_SECONDS, "86401").await).contains("60 to 86400"));
    assert_eq!(set(PIN_UNLOCK_SECONDS, "600").await.unwrap(), "600");
    assert!(err(set(LOCAL_NETWORKS, "10.0.0.0/33").await).contains("CIDR"));
    assert!(err(set(LOCAL_NETWORKS, "").await).contains("at least one"));
    assert_eq!(
        set(LOCAL_NETWORKS, "192.168.1.7/24, 2001:db8::1")
            .await
            .unwrap(),
        "192.168.1.0/24,2001:db8::1/128"
    );
    assert!(err(set(OFFICE_HOURS_TIMEZONE, "Mars/Olympus").await).contains("IANA"));
    assert_eq!(
        set(OFFICE_HOURS_TIMEZONE, "Europe/Berlin").await.unwrap(),
        "Europe/Berlin"
    );
    let m = err(set(OFFICE_HOURS, "monday 8-9").await);
    assert!(m.contains("mon-fri 08:00-18:00"), "{m}");
    assert_eq!(
        set(OFFICE_HOURS, "mon-fri  08:00-18:00;sat 09:00-12:00")
            .await
            .unwrap(),
        "mon-fri 08:00-18:00; sat 09:00-12:00"
    );
    assert!(err(set(HOLIDAYS, "25.12.2026").await).contains("YYYY-MM-DD"));
    assert!(err(set(HOLIDAYS, "2026-1-1").await).contains("YYYY-MM-DD"));
    assert_eq!(
        set(HOLIDAYS, "2026-12-26, 2026-12-25").await.unwrap(),
        "2026-12-25,2026-12-26"
    );
    // Unknown keys list the policy settings too.
    let m = err(settings::normalize("country", "49"));
    assert!(
        m.contains("country_code") && m.contains("office_hours"),
        "{m}"
    );

    let c = db.policy_settings().await.unwrap();
    assert_eq!(c.country_code, "49");
    assert_eq!(c.international_prefix, "011");
    assert_eq!(c.national_prefix, "");
    assert_eq!(c.allowed_country_codes, ["44", "33"]);
    assert_eq!(c.emergency_numbers, ["112", "110"]);
    assert_eq!(c.pin_unlock_seconds, 600);
    assert_eq!(c.local_networks, ["192.168.1.0/24", "2001:db8::1/128"]);
    assert_eq!(c.holidays, ["2026-12-25", "2026-12-26"]);
    assert_eq!(c.not_configured(), None);
    assert_eq!(c.effective_timezone(), "Europe/Berlin");
    let s = c.to_settings().unwrap();
    assert_eq!(
        s.allowed_country_codes.iter().collect::<Vec<_>>(),
        ["33", "44", "49"],
        "the home country is always allowed"
    );
    assert_eq!(s.plan.country_code, "49");
    assert_eq!(s.plan.international_prefix, "011");
    let hours = s.office_hours.unwrap();
    let at = |secs: u64| std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    // Friday 2026-11-27 09:00 UTC = 10:00 Berlin: open; Christmas 2026 (a Friday): closed.
    assert!(hours.is_open(at(1_795_770_000)));
    assert!(!hours.is_open(at(1_798_189_200)));

    // Reset: the default applies again, and the version moves.
    let before = db.current_version().await.unwrap();
    assert!(db.remove_setting(PIN_UNLOCK_SECONDS).await.unwrap());
    assert!(!db.remove_setting(PIN_UNLOCK_SECONDS).await.unwrap());
    assert!(db.current_version().await.unwrap() > before);
    assert_eq!(db.policy_settings().await.unwrap().pin_unlock_seconds, 3600);
    assert!(db.remove_setting(settings::CONFIG_VERSION).await.is_err());

    // A stored value that no longer validates falls back to its default.
    db.set_setting(PIN_UNLOCK_SECONDS, "5").await.unwrap();
    assert_eq!(db.policy_settings().await.unwrap().pin_unlock_seconds, 3600);
}

fn rule(name: &str, prefix: &str) -> OutboundRuleRow {
    OutboundRuleRow::new(name, prefix, &["carrier"])
}

fn rule_names(rules: &[OutboundRuleRow]) -> Vec<String> {
    rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            assert_eq!(r.position as usize, i + 1, "positions are contiguous");
            r.name.clone()
        })
        .collect()
}

#[tokio::test]
async fn outbound_rules_keep_their_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    let a = db.add_outbound_rule(rule("a", "00"), None).await.unwrap();
    assert_eq!(a.position, 1);
    db.add_outbound_rule(rule("b", "0"), None).await.unwrap();
    let c = db.add_outbound_rule(rule("c", "1"), Some(1)).await.unwrap();
    assert_eq!(c.position, 1);
    db.add_outbound_rule(rule("d", "2"), Some(4)).await.unwrap();
    let list = db.list_outbound_rules().await.unwrap();
    assert_eq!(rule_names(&list), ["c", "a", "b", "d"]);
    // Out-of-range positions say which are possible.
    let e = db
        .add_outbound_rule(rule("e", "3"), Some(6))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("1 to 5"), "{e}");
    let e = db
        .add_outbound_rule(rule("e", "3"), Some(0))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("1 to 5"), "{e}");
    // Names are unique.
    let e = db
        .add_outbound_rule(rule("a", "9"), None)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e}");

    let before = db.current_version().await.unwrap();
    let moved = db.move_outbound_rule("d", 1).await.unwrap();
    assert_eq!(rule_names(&moved), ["d", "c", "a", "b"]);
    assert!(db.current_version().await.unwrap() > before);
    let moved = db.move_outbound_rule("d", 4).await.unwrap();
    assert_eq!(rule_names(&moved), ["c", "a", "b", "d"]);
    let moved = db.move_outbound_rule("a", 3).await.unwrap();
    assert_eq!(rule_names(&moved), ["c", "b", "a", "d"]);
    assert!(
        db.move_outbound_rule("a", 5)
            .await
            .unwrap_err()
            .to_string()
            .contains("1 to 4")
    );
    assert!(matches!(
        db.move_outbound_rule("zz", 1).await.unwrap_err(),
        StoreError::NotFound(_)
    ));

    db.remove_outbound_rule("b").await.unwrap();
    assert_eq!(
        rule_names(&db.list_outbound_rules().await.unwrap()),
        ["c", "a", "d"]
    );
    assert!(matches!(
        db.remove_outbound_rule("b").await.unwrap_err(),
        StoreError::NotFound(_)
    ));
    // The policy gets them in order.
    let s = db.policy_settings().await.unwrap().to_settings().unwrap();
    let names: Vec<&str> = s.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["c", "a", "d"]);
}

#[tokio::test]
async fn outbound_rules_round_trip_and_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    let full = OutboundRuleRow {
        position: 0,
        name: "intl-sales".into(),
        prefix: "00".into(),
        min_len: Some(6),
        max_len: Some(20),
        extensions: vec!["201".into(), "202".into()],
        strip: 2,
        prepend: "+".into(),
        trunks: vec!["carrier".into(), "backup".into()],
    };
    let added = db.add_outbound_rule(full.clone(), None).await.unwrap();
    assert_eq!(
        added,
        OutboundRuleRow {
            position: 1,
            ..full.clone()
        }
    );
    assert_eq!(db.list_outbound_rules().await.unwrap(), vec![added.clone()]);
    let r = added.to_rule();
    assert_eq!((r.min_len, r.max_len, r.strip), (6, 20, 2));
    assert!(r.matches("0044207946000", "201"));
    assert!(!r.matches("0044207946000", "203"));
    assert_eq!(r.rewrite("0044207946000"), "+44207946000");
    // Defaults: min length = prefix length, max 32, all extensions.
    let r = rule("local", "0").to_rule();
    assert_eq!((r.min_len, r.max_len), (1, MAX_NUMBER_LEN));
    assert!(r.extensions.is_empty());

    let bad = |f: fn(&mut OutboundRuleRow)| {
        let mut r = rule("x", "0");
        f(&mut r);
        match r.validate() {
            Err(StoreError::Invalid(m)) => m,
            other => panic!("expected Invalid, got {other:?}"),
        }
    };
    assert!(bad(|r| r.name = "a b".into()).contains("letters, digits"));
    assert!(bad(|r| r.prefix = "0a".into()).contains("expected digits"));
    assert!(bad(|r| r.prefix = "++1".into()).contains("expected digits"));
    assert!(bad(|r| r.prepend = "49x".into()).contains("expected digits"));
    assert!(
        bad(|r| {
            r.min_len = Some(9);
            r.max_len = Some(4)
        })
        .contains("min length 9 is greater than max length 4")
    );
    assert!(bad(|r| r.max_len = Some(0)).contains("1 to 32"));
    assert!(
        bad(|r| {
            r.prefix = "0049".into();
            r.min_len = Some(2);
            r.max_len = Some(3)
        })
        .contains("never match")
    );
    assert!(bad(|r| r.strip = 33).contains("0 to 32"));
    assert!(bad(|r| r.extensions = vec!["2".into()]).contains("2 to 10 digits"));
    assert!(bad(|r| r.trunks.clear()).contains("at least one trunk"));
    assert!(bad(|r| r.trunks = vec!["a,b".into()]).contains("trunk name"));
    assert!(bad(|r| r.trunks = vec!["a".into(), "a".into()]).contains("twice"));
    // "" and "+" are fine for prefix and prepend.
    let mut any = rule("any", "");
    any.prepend = "+".into();
    any.validate().unwrap();
    // The store refuses an invalid rule without writing.
    let before = db.current_version().await.unwrap();
    let mut r = rule("y", "0");
    r.trunks.clear();
    assert!(db.add_outbound_rule(r, None).await.is_err());
    assert_eq!(db.current_version().await.unwrap(), before);
}

#[tokio::test]
async fn policy_from_the_store_routes_calls() {
    use super::policy::*;
    use pbx::policy::{Route, route};
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    let mut emergency = rule("emergency", "");
    emergency.min_len = Some(3);
    emergency.max_len = Some(3);
    db.add_outbound_rule(emergency, None).await.unwrap();
    let mut out = rule("out", "0");
    out.strip = 1;
    db.add_outbound_rule(out, None).await.unwrap();
    let caller = db
        .create_extension(ext("201", "routeabcde"))
        .await
        .unwrap()
        .caller_restrictions();
    let is_ext = |n: &str| n == "201";
    let now = std::time::SystemTime::now();

    // Not configured: emergency only.
    let s = db.policy_settings().await.unwrap().to_settings().unwrap();
    assert!(matches!(
        route(&s, &caller, "112", is_ext, now),
        Route::Emergency { .. }
    ));
    assert!(matches!(
        route(&s, &caller, "0301234567", is_ext, now),
        Route::Refused(_)
    ));

    db.set_setting(COUNTRY_CODE, "49").await.unwrap();
    let s = db.policy_settings().await.unwrap().to_settings().unwrap();
    assert!(matches!(
        route(&s, &caller, "0301234567", is_ext, now),
        Route::External { .. }
    ));
    assert!(matches!(
        route(&s, &caller, "00044207946000", is_ext, now),
        Route::Refused(_)
    ));
    db.set_setting(ALLOWED_COUNTRY_CODES, "44").await.unwrap();
    let s = db.policy_settings().await.unwrap().to_settings().unwrap();
    assert!(matches!(
        route(&s, &caller, "00044207946000", is_ext, now),
        Route::External { .. }
    ));
}

fn trunk_new(name: &str) -> TrunkNew {
    TrunkNew {
        name: name.into(),
        host: "198.51.100.10".into(),
        username: Some("acct".into()),
        password: Some("provider secret".into()),
        sources: vec!["198.51.100.3/28".into(), "203.0.113.5".into()],
        caller_id: Some("+4930123456".into()),
        ..TrunkNew::default()
    }
}

fn invalid_msg(r: Result<impl std::fmt::Debug>) -> String {
    match r {
        Err(StoreError::Invalid(m)) => m,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[tokio::test]
async fn trunk_crud() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    let v0 = db.current_version().await.unwrap();
    let t = db.add_trunk(trunk_new("carrier")).await.unwrap();
    assert_eq!(t.port, 5060);
    assert_eq!(t.transport, "udp");
    assert_eq!(t.sources, "198.51.100.0/28,203.0.113.5/32");
    assert_eq!(t.password.as_deref(), Some("provider secret"));
    assert!(!format!("{t:?}").contains("provider secret"));
    let v1 = db.current_version().await.unwrap();
    assert!(v1 > v0);
    assert_eq!(db.get_trunk("carrier").await.unwrap(), t);
    assert!(matches!(
        db.add_trunk(trunk_new("carrier")).await,
        Err(StoreError::Conflict(m)) if m.contains("already exists")
    ));
    assert!(matches!(
        db.get_trunk("nope").await,
        Err(StoreError::NotFound(m)) if m == "trunk nope"
    ));

    // TLS defaults to 5061; names and transports are canonical.
    let mut tls = trunk_new("tls-1");
    tls.transport = Some("TLS".into());
    tls.host = "[2001:db8::10]".into();
    let tls = db.add_trunk(tls).await.unwrap();
    assert_eq!((tls.port, tls.transport.as_str()), (5061, "tls"));
    assert_eq!(tls.host, "2001:db8::10");

    let patch = TrunkPatch {
        host: Some("SIP.Example.COM.".into()),
        port: Some(5080),
        transport: Some("tcp".into()),
        register: Some(true),
        sources: Some(vec!["192.0.2.1".into()]),
        caller_id: Some(None),
        ..TrunkPatch::default()
    };
    let v2 = db.current_version().await.unwrap();
    let u = db.update_trunk("carrier", patch).await.unwrap();
    assert!(db.current_version().await.unwrap() > v2);
    assert_eq!(u.host, "sip.example.com");
    assert_eq!(
        (u.port, u.transport.as_str(), u.register),
        (5080, "tcp", true)
    );
    assert_eq!(u.sources, "192.0.2.1/32");
    assert_eq!(u.caller_id, None);
    assert_eq!(u.password.as_deref(), Some("provider secret"));
    assert_eq!(u.created_at, t.created_at);
    // Clearing the username clears the password with it.
    let u = db
        .update_trunk(
            "carrier",
            TrunkPatch {
                username: Some(None),
                ..TrunkPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((u.username, u.password), (None, None));
    assert!(matches!(
        db.update_trunk(
            "nope",
            TrunkPatch {
                register: Some(false),
                ..TrunkPatch::default()
            }
        )
        .await,
        Err(StoreError::NotFound(_))
    ));

    let names: Vec<String> = db
        .list_trunk_rows()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["carrier", "tls-1"]);
    let v3 = db.current_version().await.unwrap();
    db.remove_trunk("tls-1").await.unwrap();
    assert!(db.current_version().await.unwrap() > v3);
    assert!(matches!(
        db.remove_trunk("tls-1").await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(db.list_trunk_rows().await.unwrap().len(), 1);
}

#[tokio::test]
async fn trunk_validation() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    let with = |f: &dyn Fn(&mut TrunkNew)| {
        let mut t = trunk_new("carrier");
        f(&mut t);
        t
    };
    let m = invalid_msg(
        db.add_trunk(with(&|t| {
            t.sources = vec!["host".into(), "192.0.2.0/24".into()]
        }))
        .await,
    );
    assert!(m.contains("cannot be combined"), "{m}");
    let m = invalid_msg(
        db.add_trunk(with(&|t| t.sources = vec!["0.0.0.0/0".into()]))
            .await,
    );
    assert!(m.contains("any address"), "{m}");
    let m = invalid_msg(
        db.add_trunk(with(&|t| t.sources = vec!["10.0.0.300".into()]))
            .await,
    );
    assert!(m.contains("not an IP address or CIDR prefix"), "{m}");
    for host in [
        "",
        "1.2.3",
        "300.1.2.3",
        "-bad.example.com",
        "a b",
        "sip..example.com",
    ] {
        let m = invalid_msg(db.add_trunk(with(&|t| t.host = host.into())).await);
        assert!(m.contains("invalid host"), "{host}: {m}");
    }
    let m = invalid_msg(db.add_trunk(with(&|t| t.port = Some(0))).await);
    assert!(m.contains("1 to 65535"), "{m}");
    let m = invalid_msg(
        db.add_trunk(with(&|t| t.transport = Some("sctp".into())))
            .await,
    );
    assert!(m.contains("udp, tcp or tls"), "{m}");
    let m = invalid_msg(db.add_trunk(with(&|t| t.username = None)).await);
    assert!(m.contains("password needs a username"), "{m}");
    let m = invalid_msg(
        db.add_trunk(with(&|t| t.username = Some("a\"b".into())))
            .await,
    );
    assert!(m.contains("invalid trunk username"), "{m}");
    let m = invalid_msg(
        db.add_trunk(with(&|t| t.caller_id = Some("+49-30".into())))
            .await,
    );
    assert!(m.contains("invalid caller ID"), "{m}");
    let m = invalid_msg(db.add_trunk(with(&|t| t.name = "bad name".into())).await);
    assert!(m.contains("invalid trunk name"), "{m}");
    assert!(db.list_trunk_rows().await.unwrap().is_empty());
    assert_eq!(db.current_version().await.unwrap(), 0);

    // Updates are checked as a whole, and refused without writing.
    db.add_trunk(trunk_new("carrier")).await.unwrap();
    let m = invalid_msg(
        db.update_trunk(
            "carrier",
            TrunkPatch {
                username: Some(None),
                password: Some(Some("x".into())),
                ..TrunkPatch::default()
            },
        )
        .await,
    );
    assert!(m.contains("password needs a username"), "{m}");
    assert_eq!(
        db.get_trunk("carrier").await.unwrap().sources,
        "198.51.100.0/28,203.0.113.5/32"
    );
}

#[tokio::test]
async fn trunk_without_sources_trusts_its_host() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    let mut t = trunk_new("carrier");
    t.sources.clear();
    let row = db.add_trunk(t).await.unwrap();
    assert_eq!(row.sources, "host");
    assert_eq!(row.source_list(), vec!["host".to_string()]);
    let mut t = trunk_new("named");
    t.host = "sip.example.com".into();
    t.sources = vec![" , ".into()];
    assert_eq!(db.add_trunk(t).await.unwrap().sources, "host");
    let trunks = db.list_trunks().await.unwrap();
    assert!(trunks.iter().all(|t| t.sources.is_empty()));
    let carrier = trunks.iter().find(|t| t.name == "carrier").unwrap();
    assert!(carrier.is_source("198.51.100.10".parse().unwrap()));
    assert!(!carrier.is_source("198.51.100.9".parse().unwrap()));
    let named = trunks.iter().find(|t| t.name == "named").unwrap();
    assert!(
        !named.is_source("198.51.100.10".parse().unwrap()),
        "not resolved: trusts no one"
    );
    // Networks again, then back to the host.
    let u = db
        .update_trunk(
            "carrier",
            TrunkPatch {
                sources: Some(vec!["192.0.2.0/24".into()]),
                ..TrunkPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(u.sources, "192.0.2.0/24");
    let u = db
        .update_trunk(
            "carrier",
            TrunkPatch {
                sources: Some(vec!["HOST".into()]),
                ..TrunkPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(u.sources, "host");
}

#[tokio::test]
async fn dids_cascade_with_trunk_and_extension() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    db.create_extension(ext("201", "didabcdef1")).await.unwrap();
    db.create_extension(ext("202", "didabcdef2")).await.unwrap();
    db.add_trunk(trunk_new("carrier")).await.unwrap();
    db.add_trunk(trunk_new("backup")).await.unwrap();

    let v = db.current_version().await.unwrap();
    let d = db.add_did("+4930123456", "carrier", "201").await.unwrap();
    assert!(db.current_version().await.unwrap() > v);
    assert_eq!(
        d,
        DidRow {
            number: "+4930123456".into(),
            trunk: "carrier".into(),
            extension: "201".into()
        }
    );
    db.add_did("4930123457", "carrier", "202").await.unwrap();
    db.add_did("4940111", "backup", "202").await.unwrap();
    // The same number with or without '+' is the same DID.
    assert!(matches!(
        db.add_did("4930123456", "backup", "202").await,
        Err(StoreError::Conflict(m)) if m.contains("already exists")
    ));
    assert!(matches!(
        db.add_did("4930", "nope", "201").await,
        Err(StoreError::NotFound(m)) if m == "trunk nope"
    ));
    assert!(matches!(
        db.add_did("4930", "carrier", "299").await,
        Err(StoreError::NotFound(m)) if m == "extension 299"
    ));
    let m = invalid_msg(db.add_did("49 30", "carrier", "201").await);
    assert!(m.contains("invalid DID"), "{m}");
    assert_eq!(db.list_dids().await.unwrap().len(), 3);

    // Removal by either spelling.
    let removed = db.remove_did("+4930123457").await.unwrap();
    assert_eq!(removed.number, "4930123457");
    assert!(matches!(
        db.remove_did("4930123457").await,
        Err(StoreError::NotFound(m)) if m == "DID 4930123457"
    ));
    db.add_did("4930123457", "carrier", "202").await.unwrap();

    // Removing an extension removes its DIDs; removing a trunk removes its DIDs.
    db.remove_extension("202").await.unwrap();
    let numbers: Vec<String> = db
        .list_dids()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.number)
        .collect();
    assert_eq!(numbers, ["+4930123456"]);
    db.remove_trunk("carrier").await.unwrap();
    assert!(db.list_dids().await.unwrap().is_empty());
}

#[tokio::test]
async fn list_trunks_converts_for_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    db.create_extension(ext("201", "convabcde1")).await.unwrap();
    let mut t = trunk_new("carrier");
    t.register = true;
    db.add_trunk(t).await.unwrap();
    db.add_did("+4930123456", "carrier", "201").await.unwrap();
    let mut b = trunk_new("backup");
    b.host = "sip.example.com".into();
    b.transport = Some("tcp".into());
    b.username = None;
    b.password = None;
    b.caller_id = None;
    b.sources = vec!["192.0.2.0/24".into()];
    db.add_trunk(b).await.unwrap();

    let trunks = db.list_trunks().await.unwrap();
    assert_eq!(trunks.len(), 2);
    let backup = &trunks[0];
    assert_eq!(backup.name, "backup");
    assert_eq!(backup.transport, "TCP");
    assert_eq!(backup.socket_addr(), None);
    assert!(backup.dids.is_empty());
    let carrier = &trunks[1];
    assert_eq!(
        carrier,
        &pbx::trunks::Trunk {
            name: "carrier".into(),
            host: "198.51.100.10".into(),
            port: 5060,
            transport: "UDP".into(),
            username: Some("acct".into()),
            password: Some("provider secret".into()),
            register: true,
            sources: vec![
                "198.51.100.0/28".parse().unwrap(),
                "203.0.113.5/32".parse().unwrap()
            ],
            caller_id: Some("+4930123456".into()),
            dids: vec![("+4930123456".into(), "201".into())],
            addresses: Vec::new(),
            auth_user: None,
            tls: Default::default(),
            srtp: SrtpMode::Disabled,
        }
    );
    assert!(carrier.is_source("198.51.100.9".parse().unwrap()));
    assert_eq!(carrier.extension_for("4930123456"), Some("201"));
    assert_eq!(
        pbx::trunks::trunk_of(&trunks, "203.0.113.5".parse().unwrap()).map(|t| t.name.as_str()),
        Some("carrier")
    );

    // A row that no longer validates (written around the store) is skipped, not trusted.
    match &db {
        Db::Sqlite(pool) => {
            sqlx::query("UPDATE trunks SET sources = 'garbage' WHERE name = 'backup'")
                .execute(pool)
                .await
                .unwrap();
        }
    }
    let row = db.get_trunk("backup").await.unwrap();
    let e = row.to_trunk(&[]).unwrap_err();
    assert!(e.starts_with("trunk backup:"), "{e}");
    let names: Vec<String> = db
        .list_trunks()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["carrier"]);
}

fn vm_message(mailbox: &str, file: &str) -> VoicemailNew {
    VoicemailNew {
        mailbox: mailbox.into(),
        caller: "200".into(),
        caller_name: Some("Front desk".into()),
        received_at: 1_800_000_000_000,
        duration_ms: 4200,
        file: file.into(),
    }
}

#[tokio::test]
async fn mailboxes_come_with_extensions_and_keep_their_pin_hashed() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    let hash = pbx::voicemail::pin::hash("4711").unwrap();
    db.create_extension(ExtensionNew {
        voicemail_pin_hash: Some(hash.clone()),
        ..ext("100", "a7Kx9Qp2Lm")
    })
    .await
    .unwrap();
    db.create_extension(ext("101", "b7Kx9Qp2Lm")).await.unwrap();
    let m = db.mailbox("100").await.unwrap().expect("mailbox");
    assert!(m.enabled && !m.mwi_unsolicited && m.greeting.is_none());
    assert!(pbx::voicemail::pin::verify(
        "4711",
        m.pin_hash.as_deref().unwrap()
    ));
    assert!(!format!("{m:?}").contains("argon2"), "Debug hides the hash");
    assert_eq!(db.mailbox("101").await.unwrap().unwrap().pin_hash, None);
    assert_eq!(db.list_mailboxes().await.unwrap().len(), 2);

    let v0 = db.current_version().await.unwrap();
    db.set_voicemail_enabled("100", false).await.unwrap();
    db.set_mwi_unsolicited("100", true).await.unwrap();
    let m = db.mailbox("100").await.unwrap().unwrap();
    assert!(!m.enabled && m.mwi_unsolicited);
    assert!(
        db.current_version().await.unwrap() > v0,
        "the server reloads"
    );
    assert!(matches!(
        db.set_voicemail_enabled("999", true).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        db.set_voicemail_pin_hash("100", "1234").await,
        Err(StoreError::Invalid(_))
    ));
    let new_hash = pbx::voicemail::pin::hash("2580").unwrap();
    db.set_voicemail_pin_hash("101", &new_hash).await.unwrap();
    assert!(
        db.mailbox("101")
            .await
            .unwrap()
            .unwrap()
            .pin_changed_at
            .is_some()
    );
    assert_eq!(
        db.set_greeting("100", Some("100/g1.wav")).await.unwrap(),
        None
    );
    assert_eq!(
        db.set_greeting("100", Some("100/g2.wav")).await.unwrap(),
        Some("100/g1.wav".into()),
        "the previous greeting's file, to remove"
    );
}

#[tokio::test]
async fn voicemail_messages_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    db.create_extension(ext("100", "a7Kx9Qp2Lm")).await.unwrap();
    let a = db
        .add_voicemail_message(&vm_message("100", "100/a.wav"))
        .await
        .unwrap();
    let b = db
        .add_voicemail_message(&vm_message("100", "100/b.wav"))
        .await
        .unwrap();
    assert!(b > a);
    assert!(matches!(
        db.add_voicemail_message(&vm_message("555", "555/x.wav"))
            .await,
        Err(StoreError::NotFound(_))
    ));
    let list = db.list_voicemail_messages("100").await.unwrap();
    assert_eq!(list.iter().map(|m| m.id).collect::<Vec<_>>(), vec![a, b]);
    assert!(list.iter().all(|m| m.is_new && m.caller == "200"));
    db.mark_voicemail_read("100", a).await.unwrap();
    assert_eq!(
        db.voicemail_counts().await.unwrap(),
        vec![("100".to_string(), voicemail::Counts { new: 1, old: 1 })]
    );
    assert_eq!(
        db.mailbox_counts("100").await.unwrap(),
        voicemail::Counts { new: 1, old: 1 }
    );
    assert_eq!(
        db.mailbox_counts("555").await.unwrap(),
        voicemail::Counts::default()
    );
    assert!(!db.voicemail_message("100", a).await.unwrap().is_new);
    assert!(matches!(
        db.voicemail_message("101", a).await,
        Err(StoreError::NotFound(_))
    ));
    let v0 = db.current_version().await.unwrap();
    assert_eq!(
        db.delete_voicemail_message("100", a).await.unwrap(),
        "100/a.wav"
    );
    assert!(db.current_version().await.unwrap() > v0);
    assert!(matches!(
        db.delete_voicemail_message("100", a).await,
        Err(StoreError::NotFound(_))
    ));
    let mut files = db.voicemail_files().await.unwrap();
    files.sort();
    assert_eq!(files, vec!["100/b.wav".to_string()]);
    // A full mailbox refuses more.
    for i in 1..voicemail::MAX_MESSAGES {
        db.add_voicemail_message(&vm_message("100", &format!("100/{i}.wav")))
            .await
            .unwrap();
    }
    assert!(matches!(
        db.add_voicemail_message(&vm_message("100", "100/full.wav"))
            .await,
        Err(StoreError::Invalid(_))
    ));
    // Removing the extension removes its mailbox and messages.
    db.remove_extension("100").await.unwrap();
    assert_eq!(db.mailbox("100").await.unwrap(), None);
    assert!(db.list_voicemail_messages("100").await.unwrap().is_empty());
}

#[tokio::test]
async fn call_forwards_are_set_cleared_and_validated() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    let created = db.create_extension(ext("301", "fwdabcdefg")).await.unwrap();
    assert!(created.forwarding().is_empty());
    let before = db.current_version().await.unwrap();
    let set = db
        .update_extension(
            "301",
            ExtensionPatch {
                forward_always: Some(Some(" 302 ".into())),
                forward_busy: Some(Some("+4930123456".into())),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(set.forward_always.as_deref(), Some("302"), "trimmed");
    assert_eq!(set.forward_busy.as_deref(), Some("+4930123456"));
    assert_eq!(set.forward_no_answer, None);
    assert!(db.current_version().await.unwrap() > before);
    assert_eq!(db.get_extension("301").await.unwrap(), set);
    // "" turns one off; the others stay.
    let cleared = db
        .update_extension(
            "301",
            ExtensionPatch {
                forward_always: Some(Some(String::new())),
                forward_no_answer: Some(Some("0049301234".into())),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let f = cleared.forwarding();
    assert_eq!(
        (f.always, f.busy.as_deref(), f.no_answer.as_deref()),
        (None, Some("+4930123456"), Some("0049301234"))
    );
    for bad in ["301", "abc", "12 34", "+"] {
        let err = db
            .update_extension(
                "301",
                ExtensionPatch {
                    forward_busy: Some(Some(bad.into())),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Invalid(m) if m.starts_with("forward on busy")),
            "{bad}: {err}"
        );
    }
}

#[tokio::test]
async fn voicemail_pin_lockout_persists_locks_and_clears() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_in(dir.path()).await.unwrap();
    db.create_extension(ext("100", "a7Kx9Qp2Lm")).await.unwrap();
    let s = pbx::voicemail::lockout::LockoutSettings {
        failures_before_lockout: 3,
        lockout_seconds: 60,
    };
    let t0 = 1_800_000_000_000;
    assert_eq!(
        db.record_wrong_pin("100", s, t0).await.unwrap(),
        pbx::voicemail::lockout::WrongPin::Counted { failures: 1 }
    );
    db.record_wrong_pin("100", s, t0).await.unwrap();
    assert_eq!(
        db.record_wrong_pin("100", s, t0).await.unwrap(),
        pbx::voicemail::lockout::WrongPin::LockedOut {
            until: t0 + 60_000,
            lockouts: 1
        }
    );
    db.close().await;
    let db = Db::open_in(dir.path()).await.unwrap();
    assert_eq!(
        db.pin_lock_state("100").await.unwrap().locked(t0),
        Some(t0 + 60_000)
    );
    assert!(db.clear_pin_lockout("100").await.unwrap());
    assert!(!db.clear_pin_lockout("100").await.unwrap());
    assert_eq!(
        db.pin_lock_state("100").await.unwrap(),
        pbx::voicemail::lockout::PinLockState::default()
    );
}

#[tokio::test]
async fn resource_limits_per_extension_and_trunk() {
    use crate::limits::parse_limit;
    use pbx::limits::ExtensionLimits;
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    db.create_extension(ext("100", "a7Kx9Qp2Lm")).await.unwrap();
    let l = db.resource_limits().await.unwrap();
    assert_eq!(
        (l.max_calls_per_extension, l.max_subscriptions_per_extension),
        (4, 4)
    );
    assert!(l.extensions.is_empty() && l.trunk_max_calls.is_empty());
    let set = db
        .set_extension_limits("100", Some(Some(2)), Some(Some(1)))
        .await
        .unwrap();
    assert_eq!(
        set,
        ExtensionLimits {
            max_calls: Some(2),
            max_external_calls: Some(1)
        }
    );
    // Only what is given changes; None back to the default.
    let set = db
        .set_extension_limits("100", Some(None), None)
        .await
        .unwrap();
    assert_eq!(set.max_calls, None);
    assert_eq!(set.max_external_calls, Some(1));
    assert!(matches!(
        db.set_extension_limits("999", Some(Some(1)), None).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        db.set_trunk_max_calls("nope", Some(3)).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(parse_limit("--max-calls", "").unwrap(), None);
    assert_eq!(parse_limit("--max-calls", "0").unwrap(), None);
    assert_eq!(parse_limit("--max-calls", "12").unwrap(), Some(12));
    assert!(parse_limit("--max-calls", "1001").is_err());
    assert!(parse_limit("--max-calls", "-1").is_err());
    db.set_setting(super::policy::MAX_CALLS_PER_EXTENSION, "7")
        .await
        .unwrap();
    let l = db.resource_limits().await.unwrap();
    assert_eq!(l.max_calls_per_extension, 7);
    assert_eq!(l.extensions["100"].max_external_calls, Some(1));
}

#[tokio::test]
async fn extension_pages_follow_the_list_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    for (n, id) in [
        ("100", "aaaaaaaaaa"),
        ("99", "bbbbbbbbbb"),
        ("101", "cccccccccc"),
        ("20", "dddddddddd"),
    ] {
        db.create_extension(ext(n, id)).await.unwrap();
    }
    let numbers = |v: Vec<Extension>| v.into_iter().map(|e| e.number).collect::<Vec<_>>();
    assert_eq!(
        numbers(db.list_extensions_page(None, 2).await.unwrap()),
        ["20", "99"]
    );
    assert_eq!(
        numbers(db.list_extensions_page(Some("99"), 2).await.unwrap()),
        ["100", "101"]
    );
    assert!(
        db.list_extensions_page(Some("101"), 2)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        numbers(db.list_extensions().await.unwrap()),
        ["20", "99", "100", "101"]
    );
}
