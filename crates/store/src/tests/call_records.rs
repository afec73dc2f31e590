//! Store tests: call records and calls in progress.

use super::*;

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
    crate::tests::on_each_backend(check_cdrs_append_and_list_with_filters).await;
}

async fn check_cdrs_append_and_list_with_filters(db: Db) {
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
    crate::tests::on_each_backend(check_cdr_limit_is_capped).await;
}

async fn check_cdr_limit_is_capped(db: Db) {
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
    crate::tests::on_each_backend(check_cdr_fields_are_validated_and_cleaned).await;
}

async fn check_cdr_fields_are_validated_and_cleaned(db: Db) {
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
    crate::tests::on_each_backend(check_active_calls_are_replaced_as_a_set).await;
}

async fn check_active_calls_are_replaced_as_a_set(db: Db) {
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
