//! Store tests: extension security and restriction flags, the call policy and outbound rules.

use super::*;

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
    let Db::Sqlite(pool) = &db else {
        panic!("these checks read SQLite directly")
    };
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
    let Db::Sqlite(pool) = &db else {
        panic!("these checks read SQLite directly")
    };
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
    crate::tests::on_each_backend(check_extension_restriction_flags_round_trip).await;
}

async fn check_extension_restriction_flags_round_trip(db: Db) {
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
    crate::tests::on_each_backend(check_policy_defaults).await;
}

async fn check_policy_defaults(db: Db) {
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
    use crate::policy::*;
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
    crate::tests::on_each_backend(check_outbound_rules_keep_their_order).await;
}

async fn check_outbound_rules_keep_their_order(db: Db) {
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
    crate::tests::on_each_backend(check_outbound_rules_round_trip_and_are_validated).await;
}

async fn check_outbound_rules_round_trip_and_are_validated(db: Db) {
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
    use crate::policy::*;
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
