//! Store tests: trunks, their sources and DIDs.

use super::*;

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
    crate::tests::on_each_backend(check_trunk_crud).await;
}

async fn check_trunk_crud(db: Db) {
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
    crate::tests::on_each_backend(check_trunk_validation).await;
}

async fn check_trunk_validation(db: Db) {
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
    crate::tests::on_each_backend(check_trunk_without_sources_trusts_its_host).await;
}

async fn check_trunk_without_sources_trusts_its_host(db: Db) {
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
    crate::tests::on_each_backend(check_dids_cascade_with_trunk_and_extension).await;
}

async fn check_dids_cascade_with_trunk_and_extension(db: Db) {
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
async fn dids_to_groups_and_queues() {
    crate::tests::on_each_backend(check_dids_to_groups_and_queues).await;
}

async fn check_dids_to_groups_and_queues(db: Db) {
    db.create_extension(ext("201", "didabcdef1")).await.unwrap();
    db.add_trunk(trunk_new("carrier")).await.unwrap();
    db.add_did("4930100", "carrier", "201").await.unwrap();
    let v = db.current_version().await.unwrap();
    db.add_did_target("+4930600", "carrier", "group:600")
        .await
        .unwrap();
    assert!(db.current_version().await.unwrap() > v);
    db.add_did_target("4930700", "carrier", "queue:700")
        .await
        .unwrap();
    // One number, one meaning: taken by an extension DID, by another target (either spelling), or the other way.
    for (number, target) in [("4930100", "group:600"), ("4930600", "queue:700")] {
        assert!(matches!(
            db.add_did_target(number, "carrier", target).await,
            Err(StoreError::Conflict(_))
        ));
    }
    assert!(matches!(
        db.add_did("4930700", "carrier", "201").await,
        Err(StoreError::Conflict(m)) if m.contains("ring group or queue")
    ));
    assert!(matches!(
        db.add_did_target("4930800", "nope", "group:600").await,
        Err(StoreError::NotFound(m)) if m == "trunk nope"
    ));
    let listed: Vec<(String, String)> = db
        .list_did_targets()
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.number, d.target))
        .collect();
    assert_eq!(
        listed,
        [
            ("+4930600".to_string(), "group:600".to_string()),
            ("4930700".to_string(), "queue:700".to_string())
        ]
    );
    let removed = db.remove_did_target("4930600").await.unwrap().unwrap();
    assert_eq!(removed.target, "group:600");
    assert!(db.remove_did_target("4930600").await.unwrap().is_none());
    // A trunk's removal takes its DIDs with it.
    db.remove_trunk("carrier").await.unwrap();
    assert!(db.list_did_targets().await.unwrap().is_empty());
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
    assert_eq!(backup.transport, sip::Transport::Tcp);
    assert_eq!(backup.socket_addr(), None);
    assert!(backup.dids.is_empty());
    let carrier = &trunks[1];
    assert_eq!(
        carrier,
        &pbx::trunks::Trunk {
            name: "carrier".into(),
            host: "198.51.100.10".into(),
            port: 5060,
            transport: sip::Transport::Udp,
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
        Db::Pg(_) => panic!("this check writes SQLite directly"),
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
