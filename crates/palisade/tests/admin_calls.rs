//! `palisade calls` and `palisade cdr`, run as the real binary against a temporary data directory seeded through
//! the store API (the server's writer in production).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use store::{ActiveCallRow, CdrRow, Db};

fn palisade(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .arg("--data")
        .arg(data)
        .env_remove("PALISADE_DATA")
        .output()
        .expect("run palisade")
}

fn ok(data: &Path, args: &[&str]) -> String {
    let out = palisade(data, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?} failed: {stderr}{stdout}");
    stdout
}

/// Runs a command that must fail with exit code 1 and returns its stderr.
fn fails(data: &Path, args: &[&str]) -> String {
    let out = palisade(data, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{args:?}: {stderr}{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

fn json(data: &Path, args: &[&str]) -> Vec<Value> {
    let mut args = args.to_vec();
    args.push("--json");
    let out = ok(data, &args);
    let v: Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"));
    v.as_array().expect("a JSON array").clone()
}

fn strs(list: &[Value], key: &str) -> Vec<String> {
    list.iter()
        .map(|v| v[key].as_str().unwrap().to_string())
        .collect()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Runs `f` on a fresh connection to the database in `data` (created if missing), then closes it.
fn with_db<F, Fut>(data: &Path, f: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: std::future::Future<Output = Db>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = Db::open_in(data).await.expect("open the database");
        f(db).await.close().await;
    });
}

fn cdr(
    call_id: &str,
    caller: &str,
    callee: &str,
    started_at: i64,
    talk_secs: Option<i64>,
) -> CdrRow {
    let answered_at = talk_secs.map(|_| started_at + 3_000);
    CdrRow {
        call_id: call_id.into(),
        caller: caller.into(),
        callee: callee.into(),
        started_at,
        answered_at,
        ended_at: answered_at.unwrap_or(started_at + 20_000) + talk_secs.unwrap_or(0) * 1000,
        duration_secs: talk_secs.unwrap_or(0),
        disposition: if talk_secs.is_some() {
            "answered"
        } else {
            "no_answer"
        }
        .into(),
        hung_up_by: if talk_secs.is_some() {
            "callee"
        } else {
            "system"
        }
        .into(),
        reason: if talk_secs.is_some() {
            "bye"
        } else {
            "timeout"
        }
        .into(),
    }
}

fn seed_cdrs(data: &Path, now: i64) {
    let mut not_found = cdr("nf@h", "300", "", now - 30 * 60_000, None);
    not_found.disposition = "not_found".into();
    not_found.hung_up_by = "system".into();
    not_found.reason = "404\x1b[2J".into();
    let rows = vec![
        cdr("old@h", "100", "200", now - 3 * 3_600_000, Some(3_725)),
        cdr("mid@h", "200", "300", now - 90 * 60_000, None),
        not_found,
        cdr("new@h", "300", "100", now - 60_000, Some(42)),
    ];
    with_db(data, |db| async move {
        db.append_cdrs(&rows).await.unwrap();
        db
    });
}

#[test]
fn cdr_lists_history_with_filters() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    with_db(data, |db| async move { db });
    let out = ok(data, &["cdr"]);
    assert!(out.contains("No call records."), "{out}");
    assert!(json(data, &["cdr"]).is_empty());

    let now = now_ms();
    seed_cdrs(data, now);

    // Table: newest first, h:mm:ss, '-' for an empty callee, no control characters from the network.
    let out = ok(data, &["cdr"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    for h in [
        "STARTED",
        "CALLER",
        "CALLEE",
        "DISPOSITION",
        "DURATION",
        "HUNG UP BY",
        "REASON",
    ] {
        assert!(lines[0].contains(h), "{out}");
    }
    assert!(
        lines[1].contains("0:00:42") && lines[1].contains("answered"),
        "{out}"
    );
    assert!(
        lines[2].contains("not_found") && lines[2].contains(" - "),
        "{out}"
    );
    assert!(
        lines[3].contains("no_answer") && lines[3].contains("0:00:00"),
        "{out}"
    );
    assert!(
        lines[4].contains("1:02:05") && lines[4].contains("callee"),
        "{out}"
    );
    assert!(!out.contains('\x1b'), "{out:?}");

    // JSON: every field, RFC 3339 times.
    let list = json(data, &["cdr"]);
    assert_eq!(strs(&list, "call_id"), ["new@h", "nf@h", "mid@h", "old@h"]);
    let new = &list[0];
    assert_eq!(new["caller"], "300");
    assert_eq!(new["callee"], "100");
    assert_eq!(new["duration_secs"], 42);
    assert_eq!(new["disposition"], "answered");
    assert_eq!(new["hung_up_by"], "callee");
    assert_eq!(new["reason"], "bye");
    for key in ["started_at", "answered_at", "ended_at"] {
        let t = new[key].as_str().unwrap();
        assert!(t.len() == 24 && t.ends_with('Z'), "{key}: {t}");
    }
    assert!(list[2]["answered_at"].is_null());
    assert!(new["id"].as_i64().unwrap() > list[3]["id"].as_i64().unwrap());

    // Filters: extension as caller or callee, since (relative or RFC 3339), limit.
    assert_eq!(
        strs(&json(data, &["cdr", "--ext", "100"]), "call_id"),
        ["new@h", "old@h"]
    );
    assert_eq!(
        strs(&json(data, &["cdr", "--ext", "300"]), "call_id"),
        ["new@h", "nf@h", "mid@h"]
    );
    assert_eq!(
        strs(&json(data, &["cdr", "--since", "2h"]), "call_id"),
        ["new@h", "nf@h", "mid@h"]
    );
    assert_eq!(
        strs(
            &json(data, &["cdr", "--since", "2h", "--ext", "100"]),
            "call_id"
        ),
        ["new@h"]
    );
    assert_eq!(
        strs(&json(data, &["cdr", "--limit", "2"]), "call_id"),
        ["new@h", "nf@h"]
    );
    assert!(json(data, &["cdr", "--since", "2999-01-01T00:00:00Z"]).is_empty());
    let out = ok(data, &["cdr", "--ext", "999"]);
    assert!(out.contains("No call records."), "{out}");

    // Bad arguments.
    for limit in ["0", "10001"] {
        let e = fails(data, &["cdr", "--limit", limit]);
        assert!(e.contains("--limit must be from 1 to 10000"), "{e}");
    }
    let e = fails(data, &["cdr", "--since", "yesterday"]);
    assert!(e.contains("RFC 3339"), "{e}");
}

#[test]
fn calls_lists_the_calls_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    with_db(data, |db| async move { db });
    let out = ok(data, &["calls"]);
    assert!(out.contains("No calls in progress."), "{out}");
    assert!(json(data, &["calls"]).is_empty());

    let now = now_ms();
    let calls = vec![
        ActiveCallRow {
            call_id: "talk@h".into(),
            caller: "100".into(),
            callee: "200".into(),
            started_at: now - 70_000,
            answered_at: Some(now - 65_000),
            state: "talking".into(),
        },
        ActiveCallRow {
            call_id: "ring@h".into(),
            caller: "300".into(),
            callee: "400".into(),
            started_at: now - 5_000,
            answered_at: None,
            state: "ringing".into(),
        },
    ];
    with_db(data, |db| async move {
        db.replace_active_calls(&calls).await.unwrap();
        db
    });

    let out = ok(data, &["calls"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    for h in [
        "CALL-ID", "CALLER", "CALLEE", "STATE", "STARTED", "DURATION",
    ] {
        assert!(lines[0].contains(h), "{out}");
    }
    // Oldest first; talk time so far for the answered call, '-' for the ringing one.
    assert!(
        lines[1].starts_with("talk@h") && lines[1].contains("talking"),
        "{out}"
    );
    assert!(lines[1].contains("0:01:0"), "{out}");
    assert!(
        lines[2].starts_with("ring@h") && lines[2].trim_end().ends_with('-'),
        "{out}"
    );

    let list = json(data, &["calls"]);
    assert_eq!(strs(&list, "call_id"), ["talk@h", "ring@h"]);
    assert_eq!(strs(&list, "state"), ["talking", "ringing"]);
    let d = list[0]["duration_secs"].as_i64().unwrap();
    assert!((65..120).contains(&d), "{d}");
    assert!(list[1]["duration_secs"].is_null());
    assert!(list[1]["answered_at"].is_null());
    assert!(list[0]["updated_at"].as_str().unwrap().ends_with('Z'));

    // The server clearing the set (at start) empties the view.
    with_db(data, |db| async move {
        db.clear_active_calls().await.unwrap();
        db
    });
    assert!(json(data, &["calls"]).is_empty());
}

#[test]
fn read_only_call_commands_do_not_create_a_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("typo");
    for cmd in [
        &["calls"][..],
        &["cdr"],
        &["cdr", "--json"],
        &["calls", "--json"],
    ] {
        let e = fails(&data, cmd);
        assert!(e.contains("no Palisade database"), "{cmd:?}: {e}");
        assert!(!data.exists(), "{cmd:?}");
    }
}

#[test]
fn cdr_output_survives_a_closed_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let now = now_ms();
    let rows: Vec<CdrRow> = (0..5_000)
        .map(|i| cdr(&format!("c{i}@h"), "100", "200", now - i * 1_000, Some(i)))
        .collect();
    with_db(data, |db| async move {
        db.append_cdrs(&rows).await.unwrap();
        db
    });
    let mut child = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["cdr", "--limit", "10000", "--data"])
        .arg(data)
        .env_remove("PALISADE_DATA")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.status.success(), "{stderr}");
}
