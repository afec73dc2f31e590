//! The admin commands, run as the real binary against a temporary data directory.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::with_stdin;
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

/// Runs a command that must succeed and returns its stdout.
fn ok(data: &Path, args: &[&str]) -> String {
    let out = palisade(data, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?} failed: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
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

#[test]
fn add_prints_generated_credentials_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let out = ok(data, &["ext", "add", "100", "--name", "Front desk"]);
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("no {name} in {out}"))
    };
    let (auth_id, password) = (field("Auth ID:"), field("Password:"));
    assert_eq!(password.len(), 10, "{out}");
    assert!(password.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(auth_id.len(), 10);
    assert_ne!(auth_id, "100");
    assert!(!field("Realm:").is_empty());

    // Neither the password nor any hash is shown again.
    for shown in [
        ok(data, &["ext", "show", "100"]),
        ok(data, &["ext", "list"]),
        ok(data, &["ext", "list", "--json"]),
    ] {
        assert!(shown.contains(&auth_id), "{shown}");
        assert!(!shown.contains(&password), "{shown}");
        assert!(!shown.contains("ha1_"), "{shown}");
    }
}

#[test]
fn json_output_parses() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let added = json(data, &["ext", "add", "201", "--email", "desk@example.com"]);
    assert_eq!(added["number"], "201");
    assert_eq!(added["password"].as_str().unwrap().len(), 10);
    assert_ne!(added["auth_id"], "201");
    assert!(added["realm"].is_string());

    let shown = json(data, &["ext", "show", "201"]);
    assert_eq!(shown["auth_id"], added["auth_id"]);
    assert_eq!(shown["email"], "desk@example.com");
    assert_eq!(shown["enabled"], true);
    assert!(shown.get("password").is_none() && shown.get("ha1_md5").is_none());

    let list = json(data, &["ext", "list"]);
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(json(data, &["registrations"]), serde_json::json!([]));
    assert_eq!(
        json(
            data,
            &["events", "--since", "1h", "--kind", "ban", "--limit", "5"]
        ),
        serde_json::json!([])
    );
    let settings = json(data, &["security", "show"]);
    assert_eq!(settings["digest_algorithms"], "MD5");
    assert_eq!(settings["credential_length"], 10);
}

#[test]
fn duplicates_and_bad_input_fail_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    ok(data, &["ext", "add", "100"]);
    let e = fails(data, &["ext", "add", "100"]);
    assert!(e.contains("extension 100 already exists"), "{e}");

    let e = fails(data, &["ext", "add", "101", "--password", "short1"]);
    assert!(e.contains("at least") || e.contains("10 to"), "{e}");
    let e = fails(data, &["ext", "add", "101", "--password", "abc101defghijk"]);
    assert!(e.contains("contains the extension number 101"), "{e}");
    let e = fails(data, &["ext", "add", "101", "--auth-id", "101"]);
    assert!(e.contains("auth ID must differ"), "{e}");
    let e = fails(data, &["ext", "add", "1"]);
    assert!(
        e.contains("extension number must be 2 to 10 digits, got '1'"),
        "{e}"
    );
    let e = fails(data, &["events", "--since", "yesterday"]);
    assert!(e.contains("RFC 3339"), "{e}");
    assert_eq!(
        json(data, &["ext", "list"]).as_array().map(Vec::len),
        Some(1)
    );

    // A manual password that follows the rules is accepted.
    let added = json(
        data,
        &[
            "ext",
            "add",
            "102",
            "--auth-id",
            "desk102abc",
            "--password",
            "Vq8pLm3xZt7w",
        ],
    );
    // A password the operator gave is not echoed back.
    assert_eq!(
        (added["auth_id"].as_str(), added["password"].as_str()),
        (Some("desk102abc"), None)
    );
    let e = fails(data, &["ext", "add", "103", "--auth-id", "desk102abc"]);
    assert!(e.contains("already used by extension 102"), "{e}");
}

#[test]
fn set_reset_password_and_remove() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let added = json(data, &["ext", "add", "100"]);

    ok(
        data,
        &["ext", "set", "100", "--enabled", "false", "--name", "Lobby"],
    );
    let shown = json(data, &["ext", "show", "100"]);
    assert_eq!(shown["enabled"], false);
    assert_eq!(shown["display_name"], "Lobby");
    assert!(ok(data, &["ext", "show", "100"]).contains("Enabled:           no"));
    let e = fails(data, &["ext", "set", "100", "--digest-algorithms", "SHA-1"]);
    assert!(e.contains("MD5, SHA-256"), "{e}");
    fails(data, &["ext", "set", "100"]);

    let reset = json(data, &["ext", "reset-password", "100"]);
    assert_eq!(reset["auth_id"], added["auth_id"]);
    assert_ne!(reset["password"], added["password"]);
    assert_eq!(reset["password"].as_str().map(str::len), Some(10));
    let after = json(data, &["ext", "show", "100"]);
    assert_ne!(after["password_changed_at"], shown["password_changed_at"]);

    ok(data, &["ext", "remove", "100"]);
    let e = fails(data, &["ext", "show", "100"]);
    assert!(
        e.contains("extension 100 does not exist (list them with `palisade ext list`)"),
        "{e}"
    );
    fails(data, &["ext", "remove", "100"]);
    fails(data, &["ext", "reset-password", "100"]);
}

#[test]
fn passwords_from_standard_input() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let given = "Vq8pLm3xZt7w";

    // ext add: the password read from stdin is taken (and checked like --password), never echoed.
    let out = with_stdin(
        data,
        &[
            "ext",
            "add",
            "104",
            "--auth-id",
            "desk104abc",
            "--password-stdin",
            "--json",
        ],
        &format!("{given}\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains(given), "{stdout}");
    let added: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(added["password"], Value::Null);
    assert_eq!(added["auth_id"], "desk104abc");

    let out = with_stdin(data, &["ext", "add", "105", "--password-stdin"], "short1\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--password-stdin"), "{stderr}");
    let out = with_stdin(data, &["ext", "add", "105", "--password-stdin"], "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("held no password"), "{stderr}");
    let out = with_stdin(
        data,
        &["ext", "add", "105", "--password", given, "--password-stdin"],
        given,
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "both password flags must be refused"
    );
    fails(data, &["ext", "show", "105"]);

    // ext reset-password: random by default, the line from stdin with --password-stdin.
    let other = "Zr4kTq9wLm2x";
    let out = with_stdin(
        data,
        &["ext", "reset-password", "104", "--password-stdin"],
        &format!("{other}\r\n"),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("(the one given; not shown)"), "{stdout}");
    assert!(!stdout.contains(other), "{stdout}");
    let out = with_stdin(
        data,
        &["ext", "reset-password", "104", "--password-stdin"],
        "desk104abc-pw\n",
    );
    assert_eq!(out.status.code(), Some(1));
    let reset = json(data, &["ext", "reset-password", "104"]);
    assert_eq!(reset["password"].as_str().map(str::len), Some(10));
}

#[test]
fn security_settings() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let out = ok(
        data,
        &["security", "set", "digest_algorithms", "SHA-256,MD5"],
    );
    assert!(out.contains("SHA-256,MD5"), "{out}");
    assert_eq!(
        json(data, &["security", "show"])["digest_algorithms"],
        "SHA-256,MD5"
    );

    let e = fails(data, &["security", "set", "digest_algorithms", "SHA-1"]);
    assert!(e.contains("'SHA-1'") && e.contains("MD5, SHA-256"), "{e}");
    let e = fails(data, &["security", "set", "credential_length", "51"]);
    assert!(e.contains("from 10 to 50"), "{e}");
    let e = fails(data, &["security", "set", "colour", "blue"]);
    assert!(e.contains("known settings are"), "{e}");

    // Generated credentials follow credential_length.
    ok(data, &["security", "set", "credential_length", "24"]);
    let added = json(data, &["ext", "add", "300"]);
    assert_eq!(added["password"].as_str().map(str::len), Some(24));
    assert_eq!(added["auth_id"].as_str().map(str::len), Some(24));
}

#[test]
fn read_commands_do_not_create_a_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("typo");
    let e = fails(&data, &["ext", "list"]);
    assert!(e.contains("no Palisade database"), "{e}");
    assert!(!data.exists());
}

#[test]
fn add_range_creates_all_or_nothing_and_prints_credentials_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let out = ok(data, &["ext", "add-range", "2000", "2099"]);
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("number,auth_id,password,voicemail_pin"),
        "{out}"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 100, "{out}");
    let mut auth_ids = std::collections::HashSet::new();
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.len(), 4, "{row:?}");
        assert_eq!(row[3].len(), 4, "voicemail PIN: {row:?}");
        assert!(
            pbx::voicemail::pin::validate(row[3], row[0]).is_ok(),
            "{row:?}"
        );
        assert_eq!(row[0], (2000 + i).to_string());
        assert_eq!(row[1].len(), 10);
        assert_ne!(row[1], row[0]);
        assert_eq!(row[2].len(), 10);
        assert!(row[2].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert!(
            auth_ids.insert(row[1].to_string()),
            "auth ID twice: {row:?}"
        );
    }
    let list = json(data, &["ext", "list"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 100);
    assert_eq!(list[0]["auth_id"], rows[0][1]);
    assert_eq!(list[99]["number"], "2099");
    // The passwords are not shown again.
    let shown = ok(data, &["ext", "list", "--json"]);
    assert!(!shown.contains(rows[0][2]) && !shown.contains(rows[99][2]));

    // Overlapping an existing number refuses the whole range.
    let e = fails(data, &["ext", "add-range", "2095", "2105"]);
    assert!(e.contains("2095") && e.contains("already exist"), "{e}");
    assert!(e.contains("nothing was added"), "{e}");
    assert!(
        fails(data, &["ext", "add-range", "2099", "2099"])
            .contains("extension 2099 already exists")
    );
    assert_eq!(json(data, &["ext", "list"]).as_array().unwrap().len(), 100);

    // Bad ranges.
    let e = fails(data, &["ext", "add-range", "3000", "13000"]);
    assert!(e.contains("at most 10000"), "{e}");
    let e = fails(data, &["ext", "add-range", "3010", "3000"]);
    assert!(e.contains("empty"), "{e}");
    let e = fails(data, &["ext", "add-range", "7", "20"]);
    assert!(e.contains("2 to 10 digits, got '7'"), "{e}");
    let e = fails(data, &["ext", "add-range", "9999999990", "99999999999"]);
    assert!(e.contains("2 to 10 digits"), "{e}");
    let e = fails(data, &["ext", "add-range", "30a", "300"]);
    assert!(e.contains("2 to 10 digits"), "{e}");
    assert_eq!(json(data, &["ext", "list"]).as_array().unwrap().len(), 100);

    // JSON, leading zeros kept, the largest range allowed.
    let added = json(data, &["ext", "add-range", "0100", "0102"]);
    let added = added.as_array().unwrap();
    assert_eq!(added.len(), 3);
    assert_eq!(added[0]["number"], "0100");
    assert_eq!(added[2]["number"], "0102");
    assert_eq!(added[1]["password"].as_str().unwrap().len(), 10);
    assert!(added[1]["realm"].is_string());
    let out = ok(data, &["ext", "add-range", "10000", "19999"]);
    assert_eq!(out.lines().count(), 10_001);
    assert_eq!(
        json(data, &["ext", "list"]).as_array().unwrap().len(),
        10_103
    );

    // The help says the output holds secrets.
    let help = ok(data, &["ext", "add-range", "--help"]);
    assert!(help.contains("SECRETS"), "{help}");
}

#[test]
fn extension_security_flags() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    // Defaults: any transport; SRTP when the phone offers it over TLS.
    ok(data, &["ext", "add", "100"]);
    let shown = json(data, &["ext", "show", "100"]);
    assert_eq!(shown["require_tls"], false, "{shown}");
    assert_eq!(shown["srtp"], "enabled", "{shown}");

    ok(
        data,
        &["ext", "add", "101", "--require-tls", "--srtp", "enforced"],
    );
    let shown = json(data, &["ext", "show", "101"]);
    assert_eq!(shown["require_tls"], true, "{shown}");
    assert_eq!(shown["srtp"], "enforced", "{shown}");
    let text = ok(data, &["ext", "show", "101"]);
    assert!(text.contains("TLS only:"), "{text}");
    assert!(text.contains("enforced"), "{text}");

    let set = json(
        data,
        &[
            "ext",
            "set",
            "100",
            "--require-tls",
            "true",
            "--srtp",
            "disabled",
        ],
    );
    assert_eq!(set["require_tls"], true, "{set}");
    assert_eq!(set["srtp"], "disabled", "{set}");
    let set = json(data, &["ext", "set", "100", "--require-tls", "false"]);
    assert_eq!(set["require_tls"], false, "{set}");
    assert_eq!(set["srtp"], "disabled", "left alone: {set}");

    let list = json(data, &["ext", "list"]);
    let modes: Vec<(&str, bool, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["number"].as_str().unwrap(),
                e["require_tls"].as_bool().unwrap(),
                e["srtp"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        modes,
        [("100", false, "disabled"), ("101", true, "enforced")]
    );
    let table = ok(data, &["ext", "list"]);
    assert!(
        table.contains("TLS ONLY") && table.contains("SRTP"),
        "{table}"
    );

    // Invalid values name the allowed ones and change nothing.
    for args in [
        &["ext", "set", "100", "--srtp", "mandatory"][..],
        &["ext", "add", "102", "--srtp", "on"][..],
        &["ext", "add-range", "200", "201", "--srtp", "yes"][..],
    ] {
        let e = fails(data, args);
        assert!(e.contains("disabled, enabled or enforced"), "{e}");
    }
    assert_eq!(json(data, &["ext", "show", "100"])["srtp"], "disabled");
    assert_eq!(json(data, &["ext", "list"]).as_array().unwrap().len(), 2);
    let out = palisade(data, &["ext", "set", "100", "--require-tls", "maybe"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("true"),
        "{out:?}"
    );

    // A range gets the flags too.
    ok(
        data,
        &[
            "ext",
            "add-range",
            "300",
            "302",
            "--require-tls",
            "--srtp",
            "enforced",
        ],
    );
    let e = json(data, &["ext", "show", "302"]);
    assert_eq!(
        (e["require_tls"].as_bool(), e["srtp"].as_str()),
        (Some(true), Some("enforced"))
    );
}

/// Writes a new self-signed certificate and key for `domain`; returns the certificate's SHA-256 fingerprint.
fn write_cert(cert: &Path, key: &Path, domain: &str) -> String {
    use rustls_pki_types::pem::PemObject as _;
    let (cert_pem, key_pem) = palisade::tls::generate(domain).unwrap();
    std::fs::create_dir_all(cert.parent().unwrap()).unwrap();
    std::fs::write(cert, &cert_pem).unwrap();
    std::fs::write(key, key_pem).unwrap();
    let der = rustls_pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
    palisade::tls::fingerprint_sha256(&der)
}

#[test]
fn cert_show() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let e = fails(data, &["cert", "show"]);
    assert!(
        e.contains("no TLS certificate") && e.contains("palisade serve"),
        "{e}"
    );

    // The self-signed certificate in DATA/tls.
    let tls_dir = data.join("tls");
    let fp = write_cert(
        &tls_dir.join("cert.pem"),
        &tls_dir.join("key.pem"),
        "pbx.test",
    );
    let shown = json(data, &["cert", "show"]);
    assert_eq!(shown["source"], "self-signed", "{shown}");
    assert_eq!(shown["self_signed"], true, "{shown}");
    assert_eq!(shown["sha256_fingerprint"], fp.as_str(), "{shown}");
    assert_eq!(shown["key_status"], "ok", "{shown}");
    assert_eq!(shown["expired"], false, "{shown}");
    assert!(shown["days_left"].as_i64().unwrap() > 300, "{shown}");
    assert!(
        shown["subject"].as_str().unwrap().contains("CN=pbx.test"),
        "{shown}"
    );
    let sans: Vec<&str> = shown["sans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        sans,
        ["DNS:pbx.test", "DNS:localhost", "IP:127.0.0.1", "IP:::1"]
    );
    let text = ok(data, &["cert", "show"]);
    for want in [
        "Subject:",
        "CN=pbx.test",
        "DNS:localhost",
        "days left",
        &fp,
        "yes (phones must be told",
    ] {
        assert!(text.contains(want), "{want} in {text}");
    }

    // Files named in palisade.toml (relative to the data directory) win.
    let fp2 = write_cert(
        &data.join("certs/pbx.pem"),
        &data.join("certs/pbx.key"),
        "other.test",
    );
    std::fs::write(
        data.join("palisade.toml"),
        "tls_cert = \"certs/pbx.pem\"\ntls_key = \"certs/pbx.key\"\n",
    )
    .unwrap();
    let shown = json(data, &["cert", "show"]);
    assert_eq!(shown["source"], "palisade.toml", "{shown}");
    assert_eq!(shown["sha256_fingerprint"], fp2.as_str(), "{shown}");

    // A key that does not belong to the certificate is reported.
    std::fs::copy(tls_dir.join("key.pem"), data.join("certs/pbx.key")).unwrap();
    let shown = json(data, &["cert", "show"]);
    assert!(
        shown["key_status"]
            .as_str()
            .unwrap()
            .contains("does not match"),
        "{shown}"
    );

    // A broken certificate file is an error naming it.
    std::fs::write(data.join("certs/pbx.pem"), "garbage").unwrap();
    let e = fails(data, &["cert", "show"]);
    assert!(e.contains("pbx.pem"), "{e}");
}
