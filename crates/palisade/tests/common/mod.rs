//! Helpers shared by the admin CLI integration tests.

use std::path::Path;
use std::process::{Command, Output};

/// Runs a command with `input` on its standard input (a pipe, not a terminal).
pub fn with_stdin(data: &Path, args: &[&str], input: &str) -> Output {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .arg("--data")
        .arg(data)
        .env_remove("PALISADE_DATA")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run palisade");
    let mut stdin = child.stdin.take().expect("stdin");
    // A command refused before it reads its input (clap's conflicting flags) closes the pipe first.
    if let Err(e) = stdin.write_all(input.as_bytes()) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
    }
    drop(stdin);
    child.wait_with_output().expect("wait for palisade")
}
