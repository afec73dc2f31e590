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
        node: None,
    }
}

async fn open(dir: &tempfile::TempDir) -> Db {
    Db::open_in(dir.path()).await.unwrap()
}

/// The environment variable naming a PostgreSQL server for the store's tests (`scripts/pg-test-server.sh` sets it).
const TEST_POSTGRES: &str = "PALISADE_TEST_POSTGRES";

/// Runs `check` on a fresh SQLite database, then on a fresh PostgreSQL database when `PALISADE_TEST_POSTGRES` is
/// set; otherwise says loudly that the PostgreSQL half was skipped (and fails if `PALISADE_TEST_POSTGRES_REQUIRED`
/// is set, so CI cannot skip it by accident).
pub(crate) async fn on_each_backend<F, Fut>(check: F)
where
    F: Fn(Db) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    check(db.clone()).await;
    db.close().await;
    match std::env::var(TEST_POSTGRES) {
        Ok(url) if !url.is_empty() => {
            let db = fresh_postgres(&url).await;
            check(db.clone()).await;
            db.close().await;
        }
        _ => {
            assert!(
                std::env::var_os("PALISADE_TEST_POSTGRES_REQUIRED").is_none(),
                "PALISADE_TEST_POSTGRES_REQUIRED is set but {TEST_POSTGRES} is not"
            );
            eprintln!(
                "SKIPPED on PostgreSQL: {TEST_POSTGRES} is not set (run under scripts/pg-test-server.sh to test both back ends)"
            );
        }
    }
}

/// A new, empty database on the PostgreSQL server at `url` (one per test, so tests run in parallel), migrated.
async fn fresh_postgres(url: &str) -> Db {
    use sqlx::ConnectOptions;
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "palisade_t{}_{}_{}",
        std::process::id(),
        now_ms(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let options: sqlx::postgres::PgConnectOptions = url.parse().expect("a postgres:// URL");
    let mut admin = options
        .connect()
        .await
        .expect("connect to the test PostgreSQL");
    // The name is ours (digits and underscores), not input.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create a test database");
    Db::open_postgres_options(options.database(&name))
        .await
        .expect("open and migrate the test database")
}

#[tokio::test]
async fn extension_crud() {
    on_each_backend(check_extension_crud).await;
}

async fn check_extension_crud(db: Db) {
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
    on_each_backend(check_debug_hides_hashes).await;
}

async fn check_debug_hides_hashes(db: Db) {
    let e = db.create_extension(ext("100", "a7Kx9Qp2Lm")).await.unwrap();
    let dbg = format!("{e:?}");
    assert!(
        !dbg.contains(&e.ha1_md5) && !dbg.contains(&e.ha1_sha256),
        "{dbg}"
    );
}

#[tokio::test]
async fn uniqueness_conflicts() {
    on_each_backend(check_uniqueness_conflicts).await;
}

async fn check_uniqueness_conflicts(db: Db) {
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
    on_each_backend(check_invalid_input_is_refused).await;
}

async fn check_invalid_input_is_refused(db: Db) {
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
    on_each_backend(check_every_admin_write_bumps_the_version).await;
}

async fn check_every_admin_write_bumps_the_version(db: Db) {
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
    on_each_backend(check_settings_defaults_and_validation).await;
}

async fn check_settings_defaults_and_validation(db: Db) {
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
    on_each_backend(check_event_filtering).await;
}

async fn check_event_filtering(db: Db) {
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
    on_each_backend(check_registrations_upsert_list_and_purge_by_time).await;
}

async fn check_registrations_upsert_list_and_purge_by_time(db: Db) {
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
    on_each_backend(check_write_behind_batches).await;
}

async fn check_write_behind_batches(db: Db) {
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

mod call_records;
mod cluster;
mod cluster_nodes;
mod ip_lists;
mod mailboxes;
mod office_media;
mod policy_and_rules;
mod trunks_and_dids;

#[test]
fn database_urls_are_recognised_and_redacted() {
    assert!(is_postgres_url("postgres://u@h/db"));
    assert!(is_postgres_url("postgresql://u@h/db"));
    assert!(!is_postgres_url("/var/lib/palisade/palisade.db"));
    assert!(!is_postgres_url("mysql://u@h/db"));
    assert_eq!(
        redact_url("postgres://pbx:s3cret@db.example:5432/palisade"),
        "postgres://pbx:***@db.example:5432/palisade"
    );
    assert_eq!(
        redact_url("postgres://pbx@db.example/palisade"),
        "postgres://pbx@db.example/palisade"
    );
    // An @ in the password (percent-encoding forgotten) must not leak its tail either.
    assert_eq!(
        redact_url("postgres://pbx:a@b@h/db"),
        "postgres://pbx:***@h/db"
    );
    assert_eq!(
        redact_url("palisade-data/palisade.db"),
        "palisade-data/palisade.db"
    );
}

#[tokio::test]
async fn a_bad_postgres_url_is_a_clear_error() {
    let err = Db::open_url("postgres://u@h:notaport/db")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("expected postgres://"), "{err}");
}

#[tokio::test]
async fn nodes_starting_together_agree_on_the_realm() {
    on_each_backend(check_nodes_starting_together_agree_on_the_realm).await;
}

async fn check_nodes_starting_together_agree_on_the_realm(db: Db) {
    for round in 0..5 {
        db.remove_setting("realm").await.unwrap();
        let (one, two) = (format!("one{round}.test"), format!("two{round}.test"));
        let (a, b) = tokio::join!(db.realm_or_fix(&one), db.realm_or_fix(&two));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a, b, "two first starts fixed different realms");
        assert_eq!(db.realm().await.unwrap().as_deref(), Some(a.as_str()));
    }
}

/// Every SQLite migration has its PostgreSQL twin with the same number and name, and no other: a schema change
/// made for one back end only would leave the other behind (scripts/pg-migration-from-sqlite.sh writes the twin).
#[test]
fn both_back_ends_have_the_same_migrations() {
    let list = |m: &sqlx::migrate::Migrator| -> Vec<(i64, String)> {
        m.iter()
            .map(|m| (m.version, m.description.to_string()))
            .collect()
    };
    assert_eq!(
        list(&SQLITE_MIGRATIONS),
        list(&PG_MIGRATIONS),
        "migrations/sqlite and migrations/postgres differ: run scripts/pg-migration-from-sqlite.sh NNNN_name.sql"
    );
}
