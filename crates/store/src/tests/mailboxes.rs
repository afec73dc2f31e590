//! Store tests: voicemail, forwards, PIN lockout, resource limits, extension pages.

use super::*;

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
    crate::tests::on_each_backend(check_mailboxes_come_with_extensions_and_keep_their_pin_hashed)
        .await;
}

async fn check_mailboxes_come_with_extensions_and_keep_their_pin_hashed(db: Db) {
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
    crate::tests::on_each_backend(check_voicemail_messages_lifecycle).await;
}

async fn check_voicemail_messages_lifecycle(db: Db) {
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
    crate::tests::on_each_backend(check_call_forwards_are_set_cleared_and_validated).await;
}

async fn check_call_forwards_are_set_cleared_and_validated(db: Db) {
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
    crate::tests::on_each_backend(check_extension_pages_follow_the_list_order).await;
}

async fn check_extension_pages_follow_the_list_order(db: Db) {
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
