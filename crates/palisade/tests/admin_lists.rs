//! `palisade blacklist|whitelist|security`, run as the real binary against a temporary data directory.

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

/// Runs a command that must succeed; returns (stdout, stderr).
fn ok2(data: &Path, args: &[&str]) -> (String, String) {
    let out = palisade(data, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?} failed: {stderr}{stdout}");
    (stdout, stderr)
}

fn ok(data: &Path, args: &[&str]) -> String {
    ok2(data, args).0
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

fn nets(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|e| e["net"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn blacklist_add_list_remove() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    ok(data, &["ext", "add", "100"]);
    let out = ok(data, &["blacklist", "list"]);
    assert!(out.contains("blacklist is empty"), "{out}");

    // Canonical form, expiry, note.
    let out = ok(
        data,
        &[
            "blacklist",
            "add",
            "198.51.100.7/24",
            "--expires",
            "86400",
            "--note",
            "scanner from the logs",
        ],
    );
    assert!(out.contains("Blocked 198.51.100.0/24"), "{out}");
    let added = json(data, &["blacklist", "add", "203.0.113.7"]);
    assert_eq!(added["entry"]["net"], "203.0.113.7/32");
    assert_eq!(added["entry"]["expires_at"], Value::Null);
    assert_eq!(added["replaced"], Value::Null);
    // IPv6.
    ok(data, &["blacklist", "add", "2001:DB8:0::1/32"]);

    let list = json(data, &["blacklist", "list"]);
    assert_eq!(
        nets(&list),
        ["198.51.100.0/24", "2001:db8::/32", "203.0.113.7/32"]
    );
    let first = &list[0];
    assert_eq!(first["action"], "block");
    assert_eq!(first["origin"], "manual");
    assert_eq!(first["note"], "scanner from the logs");
    let left = first["expires_in_s"].as_i64().unwrap();
    assert!((86_390..=86_400).contains(&left), "{left}");
    assert!(first["expires_at"].as_str().unwrap().ends_with('Z'));

    let table = ok(data, &["blacklist", "list"]);
    let header = table.lines().next().unwrap();
    for col in ["NET", "ACTION", "ORIGIN", "EXPIRES", "NOTE"] {
        assert!(header.contains(col), "{table}");
    }
    let row = table
        .lines()
        .find(|l| l.starts_with("198.51.100.0/24"))
        .unwrap();
    assert!(
        row.contains("in 23h59m (") || row.contains("in 1d0h ("),
        "{row}"
    );
    assert!(row.contains("scanner from the logs"), "{row}");
    assert!(table.contains("never"), "{table}");

    // Blacklist entries are not on the whitelist.
    assert!(nets(&json(data, &["whitelist", "list"])).is_empty());

    // Remove, in any spelling of the prefix; the unban is a security event.
    let out = ok(data, &["blacklist", "remove", "198.51.100.99/24"]);
    assert!(
        out.contains("Removed 198.51.100.0/24 from the blacklist"),
        "{out}"
    );
    let removed = json(data, &["blacklist", "remove", "2001:db8::/32"]);
    assert_eq!(removed["removed"]["net"], "2001:db8::/32");
    assert_eq!(
        nets(&json(data, &["blacklist", "list"])),
        ["203.0.113.7/32"]
    );
    let events = json(data, &["events", "--kind", "unban"]);
    let sources: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["reason"], "manual");
            e["source"].as_str().unwrap()
        })
        .collect();
    assert_eq!(sources, ["2001:db8::/32", "198.51.100.0/24"]);

    let e = fails(data, &["blacklist", "remove", "10.1.2.0/24"]);
    assert_eq!(
        e.trim_end(),
        "error: 10.1.2.0/24 is not on the blacklist (see `palisade blacklist list`)"
    );
}

#[test]
fn whitelist_and_replacement() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let out = ok(
        data,
        &["whitelist", "add", "10.0.0.0/8", "--note", "office LAN"],
    );
    assert!(out.contains("Whitelisted 10.0.0.0/8"), "{out}");
    ok(
        data,
        &["whitelist", "add", "2001:db8:1::/48", "--expires", "60"],
    );
    let list = json(data, &["whitelist", "list"]);
    assert_eq!(nets(&list), ["10.0.0.0/8", "2001:db8:1::/48"]);
    assert_eq!(list[0]["action"], "allow");
    assert_eq!(
        list[1]["expires_in_s"].as_i64().map(|s| s <= 60),
        Some(true)
    );
    assert!(nets(&json(data, &["blacklist", "list"])).is_empty());

    // Blocking exactly an allowed prefix replaces the allow entry, and says so.
    let out = ok(data, &["blacklist", "add", "10.0.0.0/8"]);
    assert!(
        out.contains("replaces the allow entry for 10.0.0.0/8")
            && out.contains("no longer on the whitelist"),
        "{out}"
    );
    assert_eq!(nets(&json(data, &["blacklist", "list"])), ["10.0.0.0/8"]);
    assert_eq!(
        nets(&json(data, &["whitelist", "list"])),
        ["2001:db8:1::/48"]
    );
    // And the other way round, in JSON.
    let added = json(data, &["whitelist", "add", "10.0.0.0/8"]);
    assert_eq!(added["replaced"]["action"], "block");
    assert_eq!(
        nets(&json(data, &["blacklist", "list"])),
        Vec::<String>::new()
    );

    // Removing from the wrong list says where the entry is.
    let e = fails(data, &["blacklist", "remove", "10.0.0.0/8"]);
    assert!(
        e.contains("not on the blacklist but on the whitelist"),
        "{e}"
    );
    ok(data, &["whitelist", "remove", "10.0.0.0/8"]);
    let e = fails(data, &["whitelist", "remove", "10.0.0.0/8"]);
    assert!(
        e.contains("10.0.0.0/8 is not on the whitelist (see `palisade whitelist list`)"),
        "{e}"
    );
}

#[test]
fn bad_input_and_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    ok(data, &["ext", "add", "100"]);
    for bad in ["10.0.0.0/33", "example.com", "10.0.0", "::g/64"] {
        let e = fails(data, &["blacklist", "add", bad]);
        assert!(
            e.starts_with(&format!(
                "error: `{bad}` is not an IP address or CIDR prefix (examples: "
            )),
            "{e}"
        );
        fails(data, &["whitelist", "remove", bad]);
    }
    for bad in ["0", "-5", "1h", "1000000001"] {
        let e = fails(data, &["blacklist", "add", "192.0.2.1", "--expires", bad]);
        assert!(e.contains("from 1 to 1000000000"), "{e}");
    }
    let e = fails(data, &["blacklist", "add", "192.0.2.1", "--note", "a\nb"]);
    assert!(e.contains("control characters"), "{e}");
    assert!(nets(&json(data, &["blacklist", "list"])).is_empty());

    // Blocking loopback is allowed, with a warning on stderr.
    let (out, err) = ok2(data, &["blacklist", "add", "127.0.0.0/8"]);
    assert!(out.contains("Blocked 127.0.0.0/8"), "{out}");
    assert!(
        err.starts_with("warning: ") && err.contains("local tools such as"),
        "{err}"
    );
    let (_, err) = ok2(data, &["blacklist", "add", "::1"]);
    assert!(err.contains("::1"), "{err}");
    let (_, err) = ok2(data, &["blacklist", "add", "192.0.2.0/24"]);
    assert!(err.is_empty(), "{err}");

    // Read commands on a missing data directory do not create it.
    let typo = dir.path().join("typo");
    let e = fails(&typo, &["blacklist", "list"]);
    assert!(e.contains("no Palisade database"), "{e}");
    assert!(!typo.exists());
}

#[test]
fn security_guard_settings() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let shown = json(data, &["security", "show"]);
    assert_eq!(shown["digest_algorithms"], "MD5");
    assert_eq!(shown["auth_failures_before_ban"], 25);
    assert_eq!(shown["unanswered_challenges_before_ban"], 1000);
    assert_eq!(shown["ban_seconds"], 86_400);
    assert_eq!(shown["guard_limits"]["auth_failures_before_ban"]["min"], 3);
    assert_eq!(
        shown["guard_limits"]["ban_seconds"]["max"],
        1_000_000_000u64
    );
    let table = ok(data, &["security", "show"]);
    let row = table
        .lines()
        .find(|l| l.starts_with("auth_failures_before_ban"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains("3 to 1000000"), "{row}");
    assert!(table.contains("credential_length"), "{table}");

    let out = ok(data, &["security", "set", "auth_failures_before_ban", "3"]);
    assert!(out.contains("auth_failures_before_ban = 3"), "{out}");
    assert_eq!(
        json(data, &["security", "show"])["auth_failures_before_ban"],
        3
    );

    let e = fails(data, &["security", "set", "auth_failures_before_ban", "2"]);
    assert!(
        e.contains("auth_failures_before_ban must be a whole number from 3 to 1000000, got `2`"),
        "{e}"
    );
    let e = fails(data, &["security", "set", "ban_seconds", "1000000001"]);
    assert!(e.contains("from 1 to 1000000000"), "{e}");

    // Red must stay above amber (default amber 1000).
    let e = fails(data, &["security", "set", "flood_red_pps", "900"]);
    assert!(
        e.contains("flood_red_pps (900) must be greater than flood_amber_pps (1000)")
            && e.contains("flood_red_pps 20 to 10000000"),
        "{e}"
    );
    ok(data, &["security", "set", "flood_amber_pps", "100"]);
    ok(data, &["security", "set", "flood_red_pps", "200"]);
    let e = fails(data, &["security", "set", "flood_amber_pps", "200"]);
    assert!(
        e.contains("must be greater than flood_amber_pps (200)"),
        "{e}"
    );
    let shown = json(data, &["security", "show"]);
    assert_eq!(
        (
            shown["flood_amber_pps"].clone(),
            shown["flood_red_pps"].clone()
        ),
        (100.into(), 200.into())
    );

    let e = fails(data, &["security", "set", "colour", "blue"]);
    assert!(
        e.contains("known settings are") && e.contains("ban_seconds"),
        "{e}"
    );
}
