//! Store tests: cluster nodes, registrations held by other nodes, the cluster secret, voicemail audio.

use super::*;
use crate::cluster_nodes::ClusterNode;

#[tokio::test]
async fn nodes_see_the_registrations_of_live_peers_only() {
    crate::tests::on_each_backend(check_nodes_see_the_registrations_of_live_peers_only).await;
}

async fn check_nodes_see_the_registrations_of_live_peers_only(db: Db) {
    db.create_extension(ext("201", "a7Kx9Qp2Lm")).await.unwrap();
    db.create_extension(ext("202", "b7Kx9Qp2Lm")).await.unwrap();
    db.create_extension(ext("203", "c7Kx9Qp2Lm")).await.unwrap();
    db.node_heartbeat("a", "10.0.0.1:5060", 1_000, 10_000)
        .await
        .unwrap();
    db.node_heartbeat("b", "10.0.0.2:5060", 1_000, 10_000)
        .await
        .unwrap();
    db.node_heartbeat("c", "10.0.0.3:5060", 1_000, 2_000)
        .await
        .unwrap();
    let on = |aor: &str, node: Option<&str>| Binding {
        node: node.map(String::from),
        ..binding(aor, &format!("sip:{aor}@192.0.2.1"), 100)
    };
    let changes: Vec<BindingChange> = vec![
        BindingChange::Upsert(on("201", Some("a"))),
        BindingChange::Upsert(on("202", Some("b"))),
        BindingChange::Upsert(on("203", Some("c"))),
    ];
    db.apply_binding_changes(&changes).await.unwrap();
    // Node a sees 202 on b; 203's node c is stale (heartbeat before live_since); 201 is its own.
    let remote = db.remote_bindings("a", 5_000, 50).await.unwrap();
    assert_eq!(remote.len(), 1, "{remote:?}");
    assert_eq!(
        (
            remote[0].aor.as_str(),
            remote[0].node.as_str(),
            remote[0].sip_addr.as_str()
        ),
        ("202", "b", "10.0.0.2:5060")
    );
    // Expired registrations are not offered.
    assert!(
        db.remote_bindings("a", 5_000, 100)
            .await
            .unwrap()
            .is_empty()
    );
    // A phone re-registering at another node moves its row there.
    db.apply_binding_changes(&[BindingChange::Upsert(on("202", Some("a")))])
        .await
        .unwrap();
    assert!(db.remote_bindings("a", 5_000, 50).await.unwrap().is_empty());
    let b_sees: Vec<String> = db
        .remote_bindings("b", 5_000, 50)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.aor)
        .collect();
    assert_eq!(b_sees, ["201", "202"]);
    // A node restores its own bindings and those without a node.
    db.upsert_binding(&on("203", None)).await.unwrap();
    let own: Vec<String> = db
        .list_bindings_of_node("b")
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.aor)
        .collect();
    assert_eq!(own, ["203"]);
    let nodes = db.cluster_nodes().await.unwrap();
    assert_eq!(
        nodes
            .iter()
            .map(|n: &ClusterNode| n.name.as_str())
            .collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    assert!(db.node_heartbeat("", "x", 0, 0).await.is_err());
}

#[tokio::test]
async fn the_first_cluster_secret_written_wins() {
    crate::tests::on_each_backend(check_the_first_cluster_secret_written_wins).await;
}

async fn check_the_first_cluster_secret_written_wins(db: Db) {
    assert_eq!(db.cluster_secret_or("first").await.unwrap(), "first");
    assert_eq!(db.cluster_secret_or("second").await.unwrap(), "first");
}

#[tokio::test]
async fn voicemail_audio_round_trips_as_bytes() {
    crate::tests::on_each_backend(check_voicemail_audio_round_trips_as_bytes).await;
}

async fn check_voicemail_audio_round_trips_as_bytes(db: Db) {
    let audio: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    assert_eq!(db.voicemail_audio("100/1.wav").await.unwrap(), None);
    db.put_voicemail_audio("100/1.wav", &audio).await.unwrap();
    assert_eq!(db.voicemail_audio("100/1.wav").await.unwrap(), Some(audio));
    db.put_voicemail_audio("100/1.wav", b"RIFF").await.unwrap();
    assert_eq!(
        db.voicemail_audio("100/1.wav").await.unwrap().as_deref(),
        Some(&b"RIFF"[..])
    );
    assert!(db.delete_voicemail_audio("100/1.wav").await.unwrap());
    assert!(!db.delete_voicemail_audio("100/1.wav").await.unwrap());
    for f in ["100/2.wav", "100/greeting-1.wav", "1000/3.wav"] {
        db.put_voicemail_audio(f, b"RIFF").await.unwrap();
    }
    assert_eq!(db.delete_mailbox_audio("100").await.unwrap(), 2);
    assert!(db.voicemail_audio("1000/3.wav").await.unwrap().is_some());
}

#[tokio::test]
async fn a_lease_is_held_by_one_connection_until_it_closes() {
    crate::tests::on_each_backend(check_a_lease_is_held_by_one_connection_until_it_closes).await;
}

async fn check_a_lease_is_held_by_one_connection_until_it_closes(db: Db) {
    if !db.is_postgres() {
        assert!(matches!(
            db.lease_connection().await,
            Err(StoreError::NotPorted(_))
        ));
        return;
    }
    let mut a = db.lease_connection().await.unwrap();
    let mut b = db.lease_connection().await.unwrap();
    assert!(a.try_take("trunk:carrier").await.unwrap());
    assert!(!b.try_take("trunk:carrier").await.unwrap(), "held by a");
    assert!(b.try_take("trunk:other").await.unwrap());
    // Released explicitly…
    assert!(a.release("trunk:carrier").await.unwrap());
    assert!(b.try_take("trunk:carrier").await.unwrap());
    assert!(!a.try_take("trunk:carrier").await.unwrap());
    // …or when the holder's session ends (its node died).
    drop(b);
    let mut taken = false;
    for _ in 0..50 {
        if a.try_take("trunk:carrier").await.unwrap() {
            taken = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(taken, "the lease of a closed connection is free");
    a.ping().await.unwrap();
}
