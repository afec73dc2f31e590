//! `palisade policy|rule` and the restriction flags of `palisade ext set`, run as the real binary against a
//! temporary data directory.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

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

fn json(data: &Path, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let out = ok(data, &args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
}

fn names(rules: &Value) -> Vec<String> {
    rules
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, r)| {
            assert_eq!(r["position"], i + 1, "{rules}");
            r["name"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn policy_show_defaults_and_set() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let shown = json(data, &["policy", "show"]);
    let v = &shown["values"];
    assert_eq!(v["country_code"], "");
    assert_eq!(v["international_prefix"], "00");
    assert_eq!(v["national_prefix"], "0");
    assert_eq!(
        v["emergency_numbers"],
        serde_json::json!(["112", "911", "999"])
    );
    assert_eq!(v["pin_unlock_seconds"], 3600);
    assert_eq!(v["allowed_country_codes"], serde_json::json!([]));
    assert!(
        v["local_networks"]
            .as_array()
            .unwrap()
            .contains(&Value::from("10.0.0.0/8"))
    );
    assert!(
        shown["warning"]
            .as_str()
            .unwrap()
            .contains("palisade policy set country_code")
    );
    assert_eq!(
        shown["effective_allowed_country_codes"],
        serde_json::json!([])
    );
    // Every setting with its default and allowed form.
    let settings = shown["settings"].as_array().unwrap();
    assert_eq!(settings.len(), 15);
    assert_eq!(v["max_calls_per_extension"], 4);
    let lockout = settings
        .iter()
        .find(|s| s["key"] == "pin_failures_before_lockout")
        .unwrap();
    assert_eq!(lockout["default"], "10");
    assert_eq!(v["pin_failures_before_lockout"], 10);
    assert_eq!(v["pin_lockout_seconds"], 3600);
    let e = fails(data, &["policy", "set", "pin_failures_before_lockout", "2"]);
    assert!(e.contains("3 to 100"), "{e}");
    let pin = settings
        .iter()
        .find(|s| s["key"] == "pin_unlock_seconds")
        .unwrap();
    assert_eq!(pin["default"], "3600");
    let vm = settings
        .iter()
        .find(|s| s["key"] == "voicemail_number")
        .unwrap();
    assert_eq!(vm["default"], "999");
    assert!(pin["allowed"].as_str().unwrap().contains("60 to 86400"));
    let text = ok(data, &["policy", "show"]);
    assert!(
        text.contains("warning:") && text.contains("ALLOWED"),
        "{text}"
    );

    let set = json(data, &["policy", "set", "country_code", "+44"]);
    assert_eq!(
        set,
        serde_json::json!({ "key": "country_code", "value": "44" })
    );
    ok(data, &["policy", "set", "allowed_country_codes", "49, 33"]);
    ok(
        data,
        &["policy", "set", "office_hours_timezone", "Europe/London"],
    );
    let out = ok(
        data,
        &["policy", "set", "office_hours", "mon-fri 09:00-17:30"],
    );
    assert!(out.contains("office_hours = mon-fri 09:00-17:30"), "{out}");
    ok(data, &["policy", "set", "pin_unlock_seconds", "900"]);
    let shown = json(data, &["policy", "show"]);
    assert_eq!(shown["warning"], Value::Null);
    assert_eq!(
        shown["effective_allowed_country_codes"],
        serde_json::json!(["33", "44", "49"])
    );
    assert_eq!(shown["effective_timezone"], "Europe/London");
    assert_eq!(shown["values"]["pin_unlock_seconds"], 900);
    assert_eq!(shown["values"]["office_hours"], "mon-fri 09:00-17:30");

    let reset = json(data, &["policy", "reset", "pin_unlock_seconds"]);
    assert_eq!(reset["value"], "3600");
    assert_eq!(
        json(data, &["policy", "show"])["values"]["pin_unlock_seconds"],
        3600
    );
}

#[test]
fn policy_set_errors_say_what_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let e = fails(data, &["policy", "set", "country_code", "4"]);
    assert!(
        e.contains("not a country calling code") && e.contains("1 to 3 digits"),
        "{e}"
    );
    let e = fails(data, &["policy", "set", "pin_unlock_seconds", "10"]);
    assert!(e.contains("60 to 86400"), "{e}");
    let e = fails(data, &["policy", "set", "office_hours", "weekdays 9-5"]);
    assert!(e.contains("mon-fri 08:00-18:00"), "{e}");
    let e = fails(data, &["policy", "set", "office_hours_timezone", "CET+1"]);
    assert!(e.contains("IANA"), "{e}");
    let e = fails(data, &["policy", "set", "holidays", "12/25/2026"]);
    assert!(e.contains("YYYY-MM-DD"), "{e}");
    let e = fails(data, &["policy", "set", "local_networks", "lan"]);
    assert!(e.contains("CIDR"), "{e}");
    let e = fails(data, &["policy", "set", "emergency_numbers", ""]);
    assert!(e.contains("112,911,999"), "{e}");
    let e = fails(data, &["policy", "set", "domain", "x.example"]);
    assert!(
        e.contains("unknown policy setting") && e.contains("country_code"),
        "{e}"
    );
    let e = fails(data, &["policy", "reset", "nope"]);
    assert!(e.contains("policy show"), "{e}");
    // Nothing was stored.
    let shown = json(data, &["policy", "show"]);
    assert_eq!(shown["values"]["country_code"], "");
    assert_eq!(shown["values"]["pin_unlock_seconds"], 3600);
}

#[test]
fn rules_add_list_move_remove() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let out = ok(data, &["rule", "list"]);
    assert!(
        out.contains("No outbound rules") && out.contains("rule add"),
        "{out}"
    );
    assert_eq!(json(data, &["rule", "list"]), serde_json::json!([]));

    let added = json(
        data,
        &[
            "rule",
            "add",
            "intl",
            "--prefix",
            "00",
            "--min-len",
            "6",
            "--max-len",
            "20",
            "--extensions",
            "201,202",
            "--strip",
            "2",
            "--prepend",
            "+",
            "--trunks",
            "carrier,backup",
        ],
    );
    assert_eq!(
        added,
        serde_json::json!({
            "position": 1, "name": "intl", "prefix": "00", "min_len": 6, "max_len": 20,
            "extensions": ["201", "202"], "strip": 2, "prepend": "+", "trunks": ["carrier", "backup"]
        })
    );
    ok(
        data,
        &[
            "rule", "add", "national", "--prefix", "0", "--trunks", "carrier",
        ],
    );
    let out = ok(
        data,
        &[
            "rule",
            "add",
            "emergency",
            "--prefix",
            "",
            "--min-len",
            "3",
            "--max-len",
            "3",
            "--trunks",
            "carrier",
            "--position",
            "1",
        ],
    );
    assert!(out.contains("at position 1"), "{out}");
    let list = json(data, &["rule", "list"]);
    assert_eq!(names(&list), ["emergency", "intl", "national"]);
    assert_eq!(list[2]["min_len"], Value::Null);
    let table = ok(data, &["rule", "list"]);
    assert!(
        table.contains("POS") && table.contains("carrier,backup"),
        "{table}"
    );

    let moved = json(data, &["rule", "move", "national", "--to", "2"]);
    assert_eq!(names(&moved), ["emergency", "national", "intl"]);
    let e = fails(data, &["rule", "move", "national", "--to", "4"]);
    assert!(e.contains("1 to 3"), "{e}");
    let e = fails(data, &["rule", "move", "nope", "--to", "1"]);
    assert!(
        e.contains("does not exist") && e.contains("rule list"),
        "{e}"
    );

    let removed = json(data, &["rule", "remove", "emergency"]);
    assert_eq!(removed, serde_json::json!({ "removed": "emergency" }));
    assert_eq!(names(&json(data, &["rule", "list"])), ["national", "intl"]);
    let e = fails(data, &["rule", "remove", "emergency"]);
    assert!(e.contains("does not exist"), "{e}");
    // The rules show up in `policy show`.
    assert_eq!(
        names(&json(data, &["policy", "show"])["rules"]),
        ["national", "intl"]
    );
}

#[test]
fn rule_add_errors_say_what_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    ok(
        data,
        &["rule", "add", "a", "--prefix", "0", "--trunks", "t"],
    );
    let cases: [(&[&str], &str); 8] = [
        (
            &["rule", "add", "b", "--prefix", "0x", "--trunks", "t"],
            "expected digits",
        ),
        (
            &[
                "rule",
                "add",
                "b",
                "--prefix",
                "0",
                "--prepend",
                "00-49",
                "--trunks",
                "t",
            ],
            "expected digits",
        ),
        (
            &[
                "rule",
                "add",
                "b",
                "--prefix",
                "0",
                "--min-len",
                "9",
                "--max-len",
                "4",
                "--trunks",
                "t",
            ],
            "min length 9 is greater than max length 4",
        ),
        (
            &[
                "rule",
                "add",
                "b",
                "--prefix",
                "0",
                "--extensions",
                "2",
                "--trunks",
                "t",
            ],
            "2 to 10 digits",
        ),
        (
            &["rule", "add", "b", "--prefix", "0", "--trunks", ","],
            "at least one trunk",
        ),
        (
            &["rule", "add", "b c", "--prefix", "0", "--trunks", "t"],
            "letters, digits",
        ),
        (
            &["rule", "add", "a", "--prefix", "1", "--trunks", "t"],
            "already exists",
        ),
        (
            &[
                "rule",
                "add",
                "b",
                "--prefix",
                "1",
                "--trunks",
                "t",
                "--position",
                "3",
            ],
            "1 to 2",
        ),
    ];
    for (args, want) in cases {
        let e = fails(data, args);
        assert!(e.contains(want), "{args:?}: {e}");
    }
    assert_eq!(names(&json(data, &["rule", "list"])), ["a"]);
}

#[test]
fn ext_restriction_flags() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    ok(data, &["ext", "add", "201"]);
    let shown = json(data, &["ext", "show", "201"]);
    for flag in [
        "internal_only",
        "pin_protect",
        "lan_only",
        "block_remote_ws",
        "office_hours_only",
    ] {
        assert_eq!(shown[flag], false, "{flag}: {shown}");
    }
    let set = json(
        data,
        &[
            "ext",
            "set",
            "201",
            "--internal-only",
            "true",
            "--pin-protect",
            "true",
            "--lan-only",
            "true",
            "--block-remote-ws",
            "true",
            "--office-hours-only",
            "true",
        ],
    );
    for flag in [
        "internal_only",
        "pin_protect",
        "lan_only",
        "block_remote_ws",
        "office_hours_only",
    ] {
        assert_eq!(set[flag], true, "{flag}: {set}");
    }
    json(data, &["ext", "set", "201", "--pin-protect", "false"]);
    let list = json(data, &["ext", "list"]);
    assert_eq!(list[0]["pin_protect"], false);
    assert_eq!(list[0]["internal_only"], true);
    let table = ok(data, &["ext", "list"]);
    assert!(
        table.contains("internal-only,lan-only,block-remote-ws,office-hours-only"),
        "{table}"
    );
    let text = ok(data, &["ext", "show", "201"]);
    assert!(
        text.contains("Internal only:") && text.contains("PIN protect:"),
        "{text}"
    );

    // Only true or false.
    let out = palisade(data, &["ext", "set", "201", "--lan-only", "yes"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("true"));
    let e = fails(data, &["ext", "set", "201"]);
    assert!(e.contains("--office-hours-only"), "{e}");
}
