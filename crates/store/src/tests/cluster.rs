//! Store tests: what several nodes share (issue 17): versions, notifications, the summed guard counters.

use super::*;
use crate::cluster::{AUTH_FAILURES, GuardCount, UNANSWERED_CHALLENGES};

fn count(source: &str, kind: &str, n: i64) -> GuardCount {
    GuardCount {
        source: source.into(),
        kind: kind.into(),
        count: n,
    }
}

async fn check_guard_counts_sum_other_nodes_only(db: Db) {
    let src = "203.0.113.9/32";
    db.write_guard_counts("a", &[count(src, AUTH_FAILURES, 3)], 1_000)
        .await
        .unwrap();
    db.write_guard_counts(
        "b",
        &[
            count(src, AUTH_FAILURES, 2),
            count(src, UNANSWERED_CHALLENGES, 7),
        ],
        1_000,
    )
    .await
    .unwrap();
    db.write_guard_counts("c", &[count(src, AUTH_FAILURES, 4)], 1_000)
        .await
        .unwrap();
    let mut seen_by_a = db.remote_guard_counts("a", 0).await.unwrap();
    seen_by_a.sort_by(|x, y| x.kind.cmp(&y.kind));
    assert_eq!(
        seen_by_a,
        vec![
            count(src, AUTH_FAILURES, 6),
            count(src, UNANSWERED_CHALLENGES, 7)
        ],
        "a sees b + c, not itself"
    );
    // A value replaces the node's row; 0 deletes it.
    db.write_guard_counts("b", &[count(src, AUTH_FAILURES, 0)], 2_000)
        .await
        .unwrap();
    db.write_guard_counts("c", &[count(src, AUTH_FAILURES, 5)], 2_000)
        .await
        .unwrap();
    let seen = db.remote_guard_counts("a", 0).await.unwrap();
    assert!(seen.contains(&count(src, AUTH_FAILURES, 5)), "{seen:?}");
    // Rows older than the window are ignored, then pruned.
    assert!(
        db.remote_guard_counts("a", 1_500)
            .await
            .unwrap()
            .iter()
            .all(|c| c.kind == AUTH_FAILURES),
        "b's challenge count (written at 1000) is outside the window"
    );
    assert_eq!(db.prune_guard_counts(1_500).await.unwrap(), 2);
    assert_eq!(
        db.remote_guard_counts("x", 0).await.unwrap(),
        vec![count(src, AUTH_FAILURES, 5)]
    );
}

#[tokio::test]
async fn guard_counts_sum_other_nodes_only() {
    on_each_backend(check_guard_counts_sum_other_nodes_only).await;
}

async fn check_ip_rule_writes_move_the_ip_list_version_on_postgres(db: Db) {
    let before = db.versions().await.unwrap();
    let rule = IpRule {
        net: "198.51.100.7".into(),
        action: "block".into(),
        expires_at: None,
        note: None,
        origin: "auto".into(),
        reason: Some("auth_failures".into()),
        created_at: 1,
    };
    db.upsert_ip_rule(&rule, false).await.unwrap();
    let after_ban = db.versions().await.unwrap();
    assert_eq!(
        after_ban.config, before.config,
        "an automatic ban is no configuration change"
    );
    db.remove_ip_rule("198.51.100.7").await.unwrap();
    let after_unban = db.versions().await.unwrap();
    assert!(
        after_unban.config > before.config,
        "an unban is an admin write"
    );
    if db.is_postgres() {
        assert_eq!(after_ban.ip_rules, before.ip_rules + 1);
        assert_eq!(after_unban.ip_rules, before.ip_rules + 2);
    } else {
        // One node on SQLite: nothing to announce, the IP-list version stays.
        assert_eq!(after_unban.ip_rules, before.ip_rules);
    }
}

#[tokio::test]
async fn ip_rule_writes_move_the_ip_list_version_on_postgres() {
    on_each_backend(check_ip_rule_writes_move_the_ip_list_version_on_postgres).await;
}

async fn check_admin_writes_notify_at_commit(db: Db) {
    let Db::Pg(pool) = &db else {
        return;
    };
    let mut listener = sqlx::postgres::PgListener::connect_with(pool)
        .await
        .unwrap();
    listener
        .listen_all([crate::cluster::CONFIG_CHANNEL, crate::cluster::BANS_CHANNEL])
        .await
        .unwrap();
    db.set_setting("credential_length", "12").await.unwrap();
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv())
        .await
        .expect("a notification within 5 s")
        .unwrap();
    assert_eq!(n.channel(), crate::cluster::CONFIG_CHANNEL);
    assert_eq!(n.payload(), db.versions().await.unwrap().config.to_string());
    db.remove_ip_rule("192.0.2.1").await.unwrap(); // nothing removed: no notification
    db.upsert_ip_rule(
        &IpRule {
            net: "192.0.2.1".into(),
            action: "block".into(),
            expires_at: None,
            note: None,
            origin: "manual".into(),
            reason: None,
            created_at: 1,
        },
        true,
    )
    .await
    .unwrap();
    let mut channels = Vec::new();
    for _ in 0..2 {
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv())
            .await
            .expect("a notification within 5 s")
            .unwrap();
        channels.push(n.channel().to_string());
    }
    channels.sort();
    assert_eq!(channels, ["palisade_bans", "palisade_config"]);
}

#[tokio::test]
async fn admin_writes_notify_at_commit() {
    on_each_backend(check_admin_writes_notify_at_commit).await;
}
