//! Store tests: IP lists: rules, validation, expiry, caps; the guard settings.

use super::*;

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
    crate::tests::on_each_backend(check_ip_rules_validation).await;
}

async fn check_ip_rules_validation(db: Db) {
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
    crate::tests::on_each_backend(check_ip_rule_writes_bump_the_version_only_when_asked).await;
}

async fn check_ip_rule_writes_bump_the_version_only_when_asked(db: Db) {
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
    crate::tests::on_each_backend(check_expired_ip_rules_are_purged_without_bump).await;
}

async fn check_expired_ip_rules_are_purged_without_bump(db: Db) {
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
    let Db::Sqlite(pool) = &db else {
        panic!("these checks read SQLite directly")
    };
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
    crate::tests::on_each_backend(check_guard_settings_are_validated_and_listed).await;
}

async fn check_guard_settings_are_validated_and_listed(db: Db) {
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
