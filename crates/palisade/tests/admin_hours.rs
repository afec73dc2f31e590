//! `palisade countries …` and `palisade hours …` (shorthands for the allowed_country_codes and office-hours
//! policy settings), run as the real binary against a temporary data directory.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};

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
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?} failed: {stderr}{stdout}");
    stdout
}

fn fails(data: &Path, args: &[&str]) -> String {
    let out = palisade(data, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

fn json_of(data: &Path, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let out = ok(data, &args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
}

#[test]
fn countries_list_allow_deny_share_the_policy_setting() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let v = json_of(data, &["countries", "list"]);
    assert_eq!(v["home"], "");
    assert_eq!(v["effective"], json!([]));
    assert!(v["warning"].as_str().unwrap().contains("country_code"));
    ok(data, &["policy", "set", "country_code", "49"]);
    let v = json_of(data, &["countries", "allow", "44", "+33", "44"]);
    assert_eq!(v["allowed"], json!(["44", "33"]));
    assert_eq!(v["effective"], json!(["33", "44", "49"]));
    assert_eq!(v["warning"], Value::Null);
    // The same setting as `palisade policy`.
    let p = json_of(data, &["policy", "show"]);
    assert_eq!(p["values"]["allowed_country_codes"], json!(["44", "33"]));
    let text = ok(data, &["countries", "deny", "33"]);
    assert!(text.contains("Denied 33."), "{text}");
    assert!(text.contains("calls may reach: 44, 49"), "{text}");
    let text = ok(data, &["countries", "deny", "1"]);
    assert!(text.contains("1 was not allowed before"), "{text}");
    assert_eq!(
        json_of(data, &["countries", "list"])["allowed"],
        json!(["44"])
    );
}

#[test]
fn countries_errors_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    ok(data, &["policy", "set", "country_code", "49"]);
    let e = fails(data, &["countries", "allow", "4"]);
    assert!(
        e.contains("cannot allow '4'") && e.contains("longer codes such as"),
        "{e}"
    );
    let e = fails(data, &["countries", "allow", "44", "x1"]);
    assert!(e.contains("'x1' is not 1 to 3 digits"), "{e}");
    // Nothing was stored from the refused command.
    assert_eq!(json_of(data, &["countries", "list"])["allowed"], json!([]));
    let e = fails(data, &["countries", "deny", "49"]);
    assert!(
        e.contains("home country") && e.contains("policy set country_code"),
        "{e}"
    );
    let usage = palisade(data, &["countries", "allow"]);
    assert!(!usage.status.success());
    assert!(String::from_utf8_lossy(&usage.stderr).contains("<CODE>"));
}

#[test]
fn hours_show_set_timezone_holidays() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let v = json_of(data, &["hours", "show"]);
    assert_eq!(v["office_hours"], "");
    assert_eq!(v["open_now"], false);
    let v = json_of(data, &["hours", "set", "mon-sun  00:00-24:00"]);
    assert_eq!(v["office_hours"], "mon-sun 00:00-24:00");
    assert_eq!(v["open_now"], true);
    let v = json_of(data, &["hours", "timezone", "Europe/Berlin"]);
    assert_eq!(
        (v["timezone"].as_str(), v["effective_timezone"].as_str()),
        (Some("Europe/Berlin"), Some("Europe/Berlin"))
    );
    let v = json_of(
        data,
        &["hours", "holiday", "add", "2026-12-26", "2026-12-25"],
    );
    assert_eq!(v["holidays"], json!(["2026-12-25", "2026-12-26"]));
    let v = json_of(data, &["hours", "holidays", "remove", "2026-12-25"]);
    assert_eq!(v["holidays"], json!(["2026-12-26"]));
    // Today (in the office time zone) as a holiday: closed now, whatever the weekly hours say.
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::get("Europe/Berlin").unwrap())
        .date()
        .to_string();
    let v = json_of(data, &["hours", "holiday", "add", &today]);
    assert_eq!(v["open_now"], false, "{v}");
    let p = json_of(data, &["policy", "show"]);
    assert_eq!(p["values"]["office_hours"], "mon-sun 00:00-24:00");
    assert_eq!(p["values"]["office_hours_timezone"], "Europe/Berlin");
    assert!(
        p["values"]["holidays"]
            .as_array()
            .unwrap()
            .contains(&Value::from(today.as_str()))
    );
    let text = ok(data, &["hours", "holiday", "remove", &today, "2030-01-01"]);
    assert!(text.contains("2030-01-01 was not a holiday"), "{text}");
    assert!(text.contains("open now:     yes"), "{text}");
    let v = json_of(data, &["hours", "set", ""]);
    assert_eq!(v["office_hours"], "");
}

#[test]
fn hours_errors_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let e = fails(data, &["hours", "set", "weekdays 9-5"]);
    assert!(
        e.contains("expected DAYS HH:MM-HH:MM") && e.contains("mon-fri 08:00-18:00"),
        "{e}"
    );
    let e = fails(data, &["hours", "set", "mon-fri 18:00-08:00"]);
    assert!(e.contains("mon-fri 18:00-08:00"), "{e}");
    let e = fails(data, &["hours", "timezone", "Mars/Olympus"]);
    assert!(
        e.contains("unknown time zone") && e.contains("Europe/Berlin"),
        "{e}"
    );
    let e = fails(data, &["hours", "holiday", "add", "25.12.2026"]);
    assert!(
        e.contains("invalid holiday '25.12.2026'") && e.contains("YYYY-MM-DD"),
        "{e}"
    );
    let e = fails(data, &["hours", "holiday", "add", "2026-02-30"]);
    assert!(e.contains("2026-02-30"), "{e}");
    assert_eq!(json_of(data, &["hours", "show"])["holidays"], json!([]));
}
