//! Store tests: music on hold, conference rooms and their PIN lockout, attendants, recordings and retention.

use super::*;
use crate::music::HoldMusicSetting;
use crate::recordings::{RecordingMode, RecordingRow};

#[tokio::test]
async fn music_conferences_and_attendants_keep_their_rules() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    db.create_extension(ext("100", "a7Kx9Qp2Lm")).await.unwrap();
    assert_eq!(
        db.hold_music("100").await.unwrap(),
        HoldMusicSetting::Default
    );
    let f = HoldMusicSetting::File("100/music-1.wav".into());
    assert_eq!(db.set_hold_music("100", &f).await.unwrap(), None);
    assert_eq!(
        db.set_hold_music("100", &HoldMusicSetting::Off)
            .await
            .unwrap(),
        Some("100/music-1.wav".into()),
        "the replaced file is returned for removal"
    );
    assert!(db.set_hold_music("999", &f).await.is_err());

    // A room never takes an extension's number; sizes are bounded.
    assert!(matches!(
        db.add_conference("100", None, 10).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        db.add_conference("900", None, 1).await,
        Err(StoreError::Invalid(_))
    ));
    db.add_conference("900", Some("hash"), 10).await.unwrap();
    assert!(matches!(
        db.add_conference("900", None, 10).await,
        Err(StoreError::Conflict(_))
    ));
    // Nobody in the room: a mute request is refused.
    assert!(matches!(
        db.request_conference_action("900", 1, crate::conferences::ConferenceAction::Mute)
            .await,
        Err(StoreError::NotFound(_))
    ));
    let settings = pbx::voicemail::lockout::LockoutSettings {
        failures_before_lockout: 3,
        lockout_seconds: 60,
    };
    for _ in 0..2 {
        db.record_wrong_conference_pin("900", settings, 1000)
            .await
            .unwrap();
    }
    assert!(matches!(
        db.record_wrong_conference_pin("900", settings, 1000)
            .await
            .unwrap(),
        pbx::voicemail::lockout::WrongPin::LockedOut { .. }
    ));
    assert!(
        db.conference_lock_state("900")
            .await
            .unwrap()
            .locked(2000)
            .is_some()
    );
    assert!(db.clear_conference_lockout("900").await.unwrap());

    // An attendant's number may not be a room's.
    let row = crate::attendants::AttendantRow {
        name: "main".into(),
        number: Some("900".into()),
        greeting: "main/g.wav".into(),
        options: "1=ext:100".into(),
        timeout_seconds: 10,
        on_timeout: "hangup".into(),
        on_invalid: "hangup".into(),
        after_hours: None,
        dial_by_extension: false,
    };
    assert!(matches!(
        db.add_attendant(&row).await,
        Err(StoreError::Conflict(_))
    ));
    db.add_attendant(&crate::attendants::AttendantRow {
        number: Some("800".into()),
        ..row
    })
    .await
    .unwrap();
    assert_eq!(
        db.attendant("main").await.unwrap().number.as_deref(),
        Some("800")
    );
    db.remove_conference("900").await.unwrap();
}

#[tokio::test]
async fn recordings_are_listed_by_party_and_pruned_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    db.create_extension(ext("100", "a7Kx9Qp2Lm")).await.unwrap();
    db.set_recording_mode("100", Some(RecordingMode::OnDemand))
        .await
        .unwrap();
    assert_eq!(
        db.recording_modes().await.unwrap(),
        [("100".to_string(), RecordingMode::OnDemand)]
    );
    let rec = |id: i64, at: i64| RecordingRow {
        id,
        call_id: format!("c{id}"),
        caller: "100".into(),
        callee: if id == 1 { "101" } else { "102" }.into(),
        started_at: at,
        duration_ms: 1000,
        file: format!("d/{id}.wav"),
    };
    db.add_recording(&rec(1, 1_000)).await.unwrap();
    db.add_recording(&rec(2, 90_000_000)).await.unwrap();
    assert_eq!(db.list_recordings(None).await.unwrap().len(), 2);
    assert_eq!(db.list_recordings(Some("101")).await.unwrap().len(), 1);
    assert_eq!(db.prune_recordings(50_000_000).await.unwrap(), ["d/1.wav"]);
    assert_eq!(db.list_recordings(None).await.unwrap().len(), 1);
    assert!(matches!(
        db.recording(1).await,
        Err(StoreError::NotFound(_))
    ));
}
