//! `palisade trunk …` and `palisade did …`, run as the real binary against a temporary data directory.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::with_stdin;
use serde_json::{Value, json as j};

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

const SECRET: &str = "Pr0vider-Secret!";

fn add_carrier(data: &Path) -> Value {
    json(
        data,
        &[
            "trunk",
            "add",
            "carrier",
            "--host",
            "198.51.100.10",
            "--username",
            "acct",
            "--password",
            SECRET,
            "--register",
            "--source",
            "198.51.100.3/28,203.0.113.5",
            "--caller-id",
            "+4930123456",
        ],
    )
}

#[test]
fn trunk_password_from_standard_input() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let args = [
        "trunk",
        "add",
        "carrier",
        "--host",
        "198.51.100.10",
        "--username",
        "acct",
        "--password-stdin",
        "--register",
        "--json",
    ];
    let out = with_stdin(data, &args, &format!("{SECRET}\n"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains(SECRET), "{stdout}");
    let added: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(added["password"], "set");

    // Without a terminal and without a password flag, no prompt: the trunk is added without a password.
    let shown = json(
        data,
        &[
            "trunk",
            "add",
            "other",
            "--host",
            "198.51.100.11",
            "--username",
            "u",
        ],
    );
    assert_eq!(shown["password"], Value::Null);
    let out = with_stdin(
        data,
        &["trunk", "set", "other", "--password-stdin", "--json"],
        "N3w-Secret!\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let set: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(set["password"], "set");

    let out = with_stdin(data, &["trunk", "set", "other", "--password-stdin"], "\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("held no password"));
    // --password-stdin needs --username on add, and excludes --password.
    let out = with_stdin(
        data,
        &["trunk", "add", "x", "--host", "h", "--password-stdin"],
        "pw\n",
    );
    assert_eq!(out.status.code(), Some(2));
    let out = with_stdin(
        data,
        &[
            "trunk",
            "set",
            "other",
            "--password",
            "a",
            "--password-stdin",
        ],
        "b\n",
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn tls_trunk_settings() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let missing = data.join("missing.pem");
    let e = fails(
        data,
        &[
            "trunk",
            "add",
            "sec",
            "--host",
            "sip.example.com",
            "--transport",
            "tls",
            "--ca-file",
            missing.to_str().unwrap(),
        ],
    );
    assert!(
        e.contains("--ca-file") && e.contains("cannot read CA file"),
        "{e}"
    );
    let junk = data.join("junk.pem");
    std::fs::write(&junk, "hello\n").unwrap();
    let e = fails(
        data,
        &[
            "trunk",
            "add",
            "sec",
            "--host",
            "sip.example.com",
            "--transport",
            "tls",
            "--ca-file",
            junk.to_str().unwrap(),
        ],
    );
    assert!(e.contains("holds no certificate"), "{e}");
    let e = fails(
        data,
        &[
            "trunk",
            "add",
            "sec",
            "--host",
            "h.example",
            "--srtp",
            "always",
        ],
    );
    assert!(e.contains("--srtp") && e.contains("enforced"), "{e}");

    // A certificate file is accepted (and stored as an absolute path).
    let ca = data.join("ca.pem");
    let pem = "-----BEGIN CERTIFICATE-----\nMIIBdzCCAR2gAwIBAgIUJ2d9+bvh0Xwq2dHz2ZB7N6Y5wYcwCgYIKoZIzj0EAwIw\n-----END CERTIFICATE-----\n";
    std::fs::write(&ca, pem).unwrap();
    let e = fails(
        data,
        &[
            "trunk",
            "add",
            "sec",
            "--host",
            "h.example",
            "--transport",
            "tls",
            "--ca-file",
            ca.to_str().unwrap(),
        ],
    );
    assert!(
        e.contains("--ca-file"),
        "a truncated certificate is refused: {e}"
    );

    let added = json(
        data,
        &[
            "trunk",
            "add",
            "sec",
            "--host",
            "sip.example.com",
            "--transport",
            "tls",
            "--tls-server-name",
            "SIP.Example.com",
            "--username",
            "100",
            "--auth-user",
            "acct100",
            "--srtp",
            "enabled",
        ],
    );
    assert_eq!(added["port"], 5061);
    assert_eq!(added["ca_file"], Value::Null);
    assert_eq!(added["tls_server_name"], "sip.example.com");
    assert_eq!(added["auth_user"], "acct100");
    assert_eq!(added["srtp"], "enabled");
    let shown = ok(data, &["trunk", "show", "sec"]);
    assert!(
        shown.contains("certificate for sip.example.com checked against the system roots"),
        "{shown}"
    );
    let set = json(
        data,
        &[
            "trunk",
            "set",
            "sec",
            "--tls-server-name",
            "",
            "--srtp",
            "disabled",
            "--username",
            "",
        ],
    );
    assert_eq!(set["tls_server_name"], Value::Null);
    assert_eq!(set["srtp"], "disabled");
    assert_eq!(
        set["auth_user"],
        Value::Null,
        "clearing the username clears the auth user"
    );
    let e = fails(data, &["trunk", "set", "sec", "--auth-user", "x"]);
    assert!(e.contains("auth user needs a username"), "{e}");
}

#[test]
fn trunk_add_show_list_set_remove() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let added = add_carrier(data);
    assert_eq!(added["name"], "carrier");
    assert_eq!(added["port"], 5060);
    assert_eq!(added["transport"], "udp");
    assert_eq!(added["register"], true);
    assert_eq!(added["password"], "set");
    assert_eq!(added["sources"], j!(["198.51.100.0/28", "203.0.113.5/32"]));

    let shown = json(data, &["trunk", "show", "carrier"]);
    assert_eq!(shown["username"], "acct");
    assert_eq!(shown["password"], "set");
    assert_eq!(shown["caller_id"], "+4930123456");
    let text = ok(data, &["trunk", "show", "carrier"]);
    assert!(
        text.lines()
            .any(|l| l.starts_with("password:") && l.trim_end().ends_with(" set")),
        "{text}"
    );
    assert!(text.contains("198.51.100.0/28"), "{text}");

    let list = json(data, &["trunk", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["name"], "carrier");
    let text = ok(data, &["trunk", "list"]);
    assert!(text.starts_with("NAME"), "{text}");
    assert!(text.contains("carrier"), "{text}");

    let set = json(
        data,
        &[
            "trunk",
            "set",
            "carrier",
            "--transport",
            "tls",
            "--port",
            "5061",
            "--no-register",
            "--caller-id",
            "",
            "--source",
            "192.0.2.1",
        ],
    );
    assert_eq!(set["transport"], "tls");
    assert_eq!(set["port"], 5061);
    assert_eq!(set["register"], false);
    assert_eq!(set["caller_id"], Value::Null);
    assert_eq!(set["sources"], j!(["192.0.2.1/32"]));
    assert_eq!(set["password"], "set");
    let set = json(data, &["trunk", "set", "carrier", "--username", ""]);
    assert_eq!(set["username"], Value::Null);
    assert_eq!(set["password"], Value::Null);
    let text = ok(data, &["trunk", "show", "carrier"]);
    assert!(text.contains("not set"), "{text}");

    let removed = json(data, &["trunk", "remove", "carrier"]);
    assert_eq!(removed["removed"], "carrier");
    assert_eq!(json(data, &["trunk", "list"]), j!([]));
    assert!(ok(data, &["trunk", "list"]).contains("No trunks"));
}

#[test]
fn the_password_is_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let added = add_carrier(data);
    assert!(!added.to_string().contains(SECRET));
    ok(data, &["ext", "add", "201"]);
    ok(
        data,
        &[
            "did",
            "add",
            "+4930123456",
            "--trunk",
            "carrier",
            "--ext",
            "201",
        ],
    );
    for args in [
        &["trunk", "show", "carrier"][..],
        &["trunk", "list"][..],
        &["trunk", "set", "carrier", "--host", "sip.example.com"][..],
        &["did", "list"][..],
    ] {
        for json in [false, true] {
            let mut a = args.to_vec();
            if json {
                a.push("--json");
            }
            let out = ok(data, &a);
            assert!(!out.contains(SECRET), "{a:?} shows the password: {out}");
        }
    }
    let out = ok(
        data,
        &[
            "trunk",
            "add",
            "t2",
            "--host",
            "192.0.2.9",
            "--username",
            "u",
            "--password",
            SECRET,
            "--source",
            "192.0.2.9",
        ],
    );
    assert!(!out.contains(SECRET), "{out}");
}

#[test]
fn trunk_without_sources_trusts_its_host_and_register_on_off() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let added = json(
        data,
        &[
            "trunk",
            "add",
            "named",
            "--host",
            "sip.example.com",
            "--register",
            "on",
        ],
    );
    assert_eq!(added["sources"], j!(["host"]));
    assert_eq!(added["register"], true);
    assert_eq!(added["registration"], Value::Null);
    let text = ok(data, &["trunk", "show", "named"]);
    assert!(
        text.contains("host (the addresses of sip.example.com only)"),
        "{text}"
    );
    assert!(text.contains("not reported yet"), "{text}");
    let text = ok(data, &["trunk", "set", "named", "--port", "5080"]);
    assert!(
        text.contains("warning: registration is on but the trunk has no username"),
        "{text}"
    );
    let set = json(data, &["trunk", "set", "named", "--register", "off"]);
    assert_eq!(set["register"], false);
    let set = json(data, &["trunk", "set", "named", "--register"]);
    assert_eq!(set["register"], true);
    let set = json(data, &["trunk", "set", "named", "--no-register"]);
    assert_eq!(set["register"], false);
    let text = ok(data, &["trunk", "list"]);
    assert!(
        text.contains("REGISTRATION") && text.contains("off"),
        "{text}"
    );
}

#[test]
fn trunk_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let e = fails(
        data,
        &[
            "trunk",
            "add",
            "carrier",
            "--host",
            "198.51.100.10",
            "--source",
            "host,192.0.2.0/24",
        ],
    );
    assert!(e.contains("cannot be combined"), "{e}");
    // A usage error (clap, exit code 2) that says what is expected.
    let out = palisade(
        data,
        &[
            "trunk",
            "add",
            "carrier",
            "--host",
            "198.51.100.10",
            "--register",
            "maybe",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("'maybe' is not on or off"), "{e}");
    let e = fails(
        data,
        &[
            "trunk",
            "add",
            "carrier",
            "--host",
            "198.51.100.10",
            "--source",
            "0.0.0.0/0",
        ],
    );
    assert!(e.contains("any address"), "{e}");
    let e = fails(
        data,
        &[
            "trunk",
            "add",
            "carrier",
            "--host",
            "198.51.100.10",
            "--source",
            "nonsense",
        ],
    );
    assert!(e.contains("not an IP address or CIDR prefix"), "{e}");
    let e = fails(
        data,
        &[
            "trunk", "add", "carrier", "--host", "1.2.3", "--source", "1.2.3.4",
        ],
    );
    assert!(e.contains("invalid host"), "{e}");
    let e = fails(
        data,
        &[
            "trunk",
            "add",
            "carrier",
            "--host",
            "1.2.3.4",
            "--source",
            "1.2.3.4",
            "--transport",
            "sctp",
        ],
    );
    assert!(e.contains("udp, tcp or tls"), "{e}");
    let e = fails(
        data,
        &[
            "trunk",
            "add",
            "carrier",
            "--host",
            "1.2.3.4",
            "--source",
            "1.2.3.4",
            "--caller-id",
            "abc",
        ],
    );
    assert!(e.contains("invalid caller ID"), "{e}");
    let e = fails(
        data,
        &[
            "trunk", "add", "bad name", "--host", "1.2.3.4", "--source", "1.2.3.4",
        ],
    );
    assert!(e.contains("invalid trunk name"), "{e}");

    add_carrier(data);
    let e = fails(
        data,
        &[
            "trunk", "add", "carrier", "--host", "1.2.3.4", "--source", "1.2.3.4",
        ],
    );
    assert!(e.contains("already exists"), "{e}");
    let e = fails(data, &["trunk", "show", "nope"]);
    assert!(
        e.contains("trunk nope does not exist") && e.contains("palisade trunk list"),
        "{e}"
    );
    let e = fails(data, &["trunk", "remove", "nope"]);
    assert!(e.contains("trunk nope does not exist"), "{e}");
    let e = fails(data, &["trunk", "set", "carrier"]);
    assert!(e.contains("nothing to change"), "{e}");
    let e = fails(
        data,
        &[
            "trunk",
            "set",
            "carrier",
            "--username",
            "",
            "--password",
            "x",
        ],
    );
    assert!(e.contains("password needs a username"), "{e}");
    // Nothing was changed by the refusals.
    assert_eq!(
        json(data, &["trunk", "show", "carrier"])["username"],
        "acct"
    );
}

#[test]
fn dids_map_numbers_to_extensions() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    add_carrier(data);
    ok(data, &["ext", "add", "201"]);
    ok(data, &["ext", "add", "202"]);
    assert!(ok(data, &["did", "list"]).contains("No DIDs"));
    let added = json(
        data,
        &[
            "did",
            "add",
            "+4930123456",
            "--trunk",
            "carrier",
            "--ext",
            "201",
        ],
    );
    assert_eq!(
        added,
        j!({"number": "+4930123456", "trunk": "carrier", "extension": "201"})
    );
    json(
        data,
        &[
            "did",
            "add",
            "4930123457",
            "--trunk",
            "carrier",
            "--ext",
            "202",
        ],
    );
    let list = json(data, &["did", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 2);
    let text = ok(data, &["did", "list"]);
    assert!(text.starts_with("NUMBER"), "{text}");
    let shown = json(data, &["trunk", "show", "carrier"]);
    assert_eq!(
        shown["dids"],
        j!([
            {"number": "+4930123456", "extension": "201"},
            {"number": "4930123457", "extension": "202"}
        ])
    );

    let e = fails(
        data,
        &[
            "did",
            "add",
            "4930123456",
            "--trunk",
            "carrier",
            "--ext",
            "202",
        ],
    );
    assert!(e.contains("already exists"), "{e}");
    let e = fails(
        data,
        &["did", "add", "4930999", "--trunk", "nope", "--ext", "201"],
    );
    assert!(e.contains("trunk nope does not exist"), "{e}");
    let e = fails(
        data,
        &[
            "did", "add", "4930999", "--trunk", "carrier", "--ext", "299",
        ],
    );
    assert!(e.contains("extension 299 does not exist"), "{e}");
    let e = fails(
        data,
        &["did", "add", "49-30", "--trunk", "carrier", "--ext", "201"],
    );
    assert!(e.contains("invalid DID"), "{e}");

    let removed = json(data, &["did", "remove", "4930123456"]);
    assert_eq!(removed["removed"]["number"], "+4930123456");
    let e = fails(data, &["did", "remove", "4930123456"]);
    assert!(
        e.contains("DID 4930123456 does not exist") && e.contains("palisade did list"),
        "{e}"
    );

    // Removing the extension or the trunk removes its DIDs.
    json(
        data,
        &[
            "did",
            "add",
            "4930123458",
            "--trunk",
            "carrier",
            "--ext",
            "201",
        ],
    );
    ok(data, &["ext", "remove", "202"]);
    let list = json(data, &["did", "list"]);
    assert_eq!(
        list,
        j!([{"number": "4930123458", "trunk": "carrier", "extension": "201"}])
    );
    let removed = json(data, &["trunk", "remove", "carrier"]);
    assert_eq!(removed["dids_removed"], j!(["4930123458"]));
    assert_eq!(json(data, &["did", "list"]), j!([]));
}

#[test]
fn removing_a_trunk_warns_about_rules_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    add_carrier(data);
    ok(
        data,
        &[
            "rule", "add", "national", "--prefix", "0", "--trunks", "carrier",
        ],
    );
    let out = ok(data, &["trunk", "remove", "carrier"]);
    assert!(
        out.contains("warning: outbound rules still name trunk carrier: national"),
        "{out}"
    );
}
