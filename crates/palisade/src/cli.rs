//! The command line. Every `serve` flag overrides the same setting in `palisade.toml`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{ListenSpec, LogFormat};

#[derive(Debug, Parser)]
#[command(
    name = "palisade",
    version = crate::VERSION,
    about = "Palisade: a secure-by-default SIP PBX"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the SIP server.
    Serve(ServeArgs),
    /// Back up the database, voicemail, greetings, TLS files and configuration into one archive, while the
    /// server runs.
    Backup(crate::backup::BackupArgs),
    /// Restore a backup into an empty data directory.
    Restore(crate::backup::RestoreArgs),
    /// Is the server running: version, listeners, counts, certificate expiry, database state, last backup.
    Status(crate::metrics::status_command::StatusArgs),
    #[command(flatten)]
    Admin(crate::admin::AdminCommand),
}

#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// Data directory (configuration, certificates, database). Created on first start.
    #[arg(long, value_name = "DIR", env = "PALISADE_DATA")]
    pub data: Option<PathBuf>,

    /// The database: a postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE URL to run on PostgreSQL (several nodes on one
    /// database, docs/cluster.md); default: DATA/palisade.db (SQLite, one node).
    #[arg(long, value_name = "URL", env = "PALISADE_DATABASE")]
    pub database: Option<String>,

    /// This node's name when several share one PostgreSQL database (docs/cluster.md): 1-64 of A-Z a-z 0-9 . _ -,
    /// unique per node. Default: the host name and the first SIP port, e.g. pbx1-5060.
    #[arg(long, value_name = "NAME", env = "PALISADE_NODE")]
    pub node: Option<String>,

    /// Where to listen, as TRANSPORT:IP:PORT (udp, tcp, tls, or ws/wss for SIP over WebSocket), e.g.
    /// udp:0.0.0.0:5060, tls:[::]:5061 or wss:0.0.0.0:8089.
    /// Repeat for several. Default: UDP and TCP on 5060 and TLS on 5061, all addresses, IPv4 and IPv6.
    #[arg(long, value_name = "TRANSPORT:IP:PORT")]
    pub listen: Vec<ListenSpec>,

    /// The SIP domain this server is authoritative for (default: the machine's hostname).
    #[arg(long, value_name = "NAME")]
    pub domain: Option<String>,

    /// Log output format.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,

    /// TLS certificate chain (PEM). Default: a self-signed certificate generated in DATA/tls.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// TLS private key (PEM), with --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Value of the Server header in responses; an empty string sends none.
    #[arg(long, value_name = "TEXT")]
    pub server_header: Option<String>,

    /// UDP port range of the media relay, LO-HI (RTP on even ports, RTCP on the next). Default 10000-20000.
    #[arg(long, value_name = "LO-HI")]
    pub rtp_ports: Option<String>,

    /// The address phones reach Palisade's media relay (and, when listening on all addresses, its signalling)
    /// at; written into SDP, Via and Contact. Default: the first listener with a specific address, else 127.0.0.1.
    #[arg(long, value_name = "IP")]
    pub advertise: Option<std::net::IpAddr>,

    /// Where the web console and REST API listen (HTTPS), as IP:PORT; repeat for several, or `off` for none.
    /// Default: 0.0.0.0:8443 and [::]:8443. Only sources in `admin_networks` (palisade.toml) are answered.
    #[arg(long, value_name = "IP:PORT|off")]
    pub admin_listen: Vec<String>,
    /// Serve /metrics (Prometheus), /health and /status over plain HTTP on IP:PORT, e.g. 127.0.0.1:9090.
    /// Sources outside loopback are refused unless listed in metrics_allow (palisade.toml). Default: off.
    #[arg(long, value_name = "IP:PORT")]
    pub metrics_listen: Option<std::net::SocketAddr>,

    /// Also send security events (failed logins, bans, throttles, policy refusals) to a syslog server as
    /// RFC 5424 over UDP, e.g. udp:127.0.0.1:514. Default: off.
    #[arg(long, value_name = "udp:HOST:PORT")]
    pub syslog: Option<crate::syslog::SyslogTarget>,
}
