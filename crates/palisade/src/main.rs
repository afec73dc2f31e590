//! The `palisade` binary: command line, configuration and the socket edge around the sans-IO service.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use palisade::cli::{Cli, Command};
use palisade::config::{Config, TlsSource};
use palisade::{logging, server, tls};

/// Exit code for usage and configuration errors.
const EXIT_USAGE: u8 = 2;
/// Exit code for errors while running.
const EXIT_RUNTIME: u8 = 1;

fn main() -> ExitCode {
    // clap prints its own `error: ...` and exits with 2 (0 for --help and --version).
    let cli = Cli::parse();
    match cli.command {
        Command::Admin(cmd) => palisade::admin::main(cmd),
        Command::Backup(args) => palisade::backup::main_backup(args),
        Command::Restore(args) => palisade::backup::main_restore(args),
        Command::Status(args) => palisade::metrics::status_command::main(args),
        Command::Serve(args) => {
            let config = match Config::load(&args) {
                Ok(c) => c,
                Err(e) => return fail(&e, EXIT_USAGE),
            };
            // Certificate files the administrator named are configuration: check them before starting.
            if let TlsSource::Files { cert, key } = &config.tls
                && let Err(e) = tls::load_pem(cert, key)
            {
                return fail(&e, EXIT_USAGE);
            }
            logging::init(config.log_format);
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    return fail(
                        &anyhow::Error::new(e).context("cannot start the async runtime"),
                        EXIT_RUNTIME,
                    );
                }
            };
            let result = runtime.block_on(server::run(config));
            runtime.shutdown_timeout(Duration::from_millis(500));
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e, EXIT_RUNTIME),
            }
        }
    }
}

fn fail(e: &anyhow::Error, code: u8) -> ExitCode {
    eprintln!("error: {e:#}");
    ExitCode::from(code)
}
