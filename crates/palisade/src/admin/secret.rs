//! Passwords for admin commands without a command line that shows them: a command line is readable by every
//! local user (`ps`, `/proc/PID/cmdline`) while the command runs, so `--password-stdin` reads the password as one
//! line from standard input and, on a terminal, a prompt reads it without echo.

use std::io::{BufRead, IsTerminal as _};

use anyhow::{anyhow, bail};

/// Where a command's password comes from, as its flags say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordArgs {
    /// `--password PW` (works, but is visible to other local users while the command runs).
    pub flag: Option<String>,
    /// `--password-stdin`.
    pub stdin: bool,
}

impl PasswordArgs {
    /// The password: from `--password`, else from standard input (`--password-stdin`), else — when `prompt` is
    /// given and standard input is a terminal — typed at a prompt without echo (twice, to catch typos), else none.
    pub fn read(self, prompt: Option<&str>) -> anyhow::Result<Option<String>> {
        if let Some(pw) = self.flag {
            return Ok(Some(pw));
        }
        if self.stdin {
            return first_line(std::io::stdin().lock()).map(Some);
        }
        match prompt {
            Some(prompt) if std::io::stdin().is_terminal() => prompt_twice(prompt).map(Some),
            _ => Ok(None),
        }
    }
}

/// The first line of `input` without its line ending: the password given with `--password-stdin`.
pub fn first_line(mut input: impl BufRead) -> anyhow::Result<String> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .map_err(|e| anyhow!("--password-stdin: cannot read standard input: {e}"))?;
    let pw = line
        .strip_suffix('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .unwrap_or(&line);
    if pw.is_empty() {
        bail!(
            "--password-stdin: standard input held no password (give it as one line, e.g. `printf '%s\\n' \"$PW\" | \
             palisade …`)"
        );
    }
    Ok(pw.to_string())
}

/// Reads a password at the terminal without echo, twice; the two must match.
fn prompt_twice(prompt: &str) -> anyhow::Result<String> {
    let read = |p: &str| {
        rpassword::prompt_password(p).map_err(|e| anyhow!("cannot read the password: {e}"))
    };
    let first = read(&format!("{prompt}: "))?;
    if first.is_empty() {
        bail!("no password typed");
    }
    if read("Again: ")? != first {
        bail!("the two passwords differ; nothing was changed");
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_line_drops_the_line_ending_only() {
        assert_eq!(first_line(&b"s3cret pw \n"[..]).unwrap(), "s3cret pw ");
        assert_eq!(first_line(&b"s3cret\r\nsecond\n"[..]).unwrap(), "s3cret");
        assert_eq!(first_line(&b"no-newline"[..]).unwrap(), "no-newline");
    }

    #[test]
    fn empty_input_is_an_error() {
        for input in [&b""[..], b"\n", b"\r\n"] {
            let e = first_line(input).unwrap_err().to_string();
            assert!(e.contains("held no password"), "{e}");
        }
    }

    #[test]
    fn flag_wins_and_no_source_is_none() {
        let flag = PasswordArgs {
            flag: Some("given-on-flag".into()),
            stdin: false,
        };
        assert_eq!(flag.read(None).unwrap().as_deref(), Some("given-on-flag"));
        let none = PasswordArgs {
            flag: None,
            stdin: false,
        };
        assert_eq!(none.read(None).unwrap(), None);
    }
}
