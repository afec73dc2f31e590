//! Settings: `palisade.toml` in the data directory, overridden by command-line flags, resolved into one
//! [`Config`] the server runs with.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::cli::ServeArgs;
use crate::service::Transport;

/// The configuration file's name inside the data directory.
pub const CONFIG_FILE: &str = "palisade.toml";

/// Data directory used when neither --data nor PALISADE_DATA is given.
pub const DEFAULT_DATA_DIR: &str = "palisade-data";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// One listener: transport plus local address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenSpec {
    pub transport: Transport,
    pub addr: SocketAddr,
}

impl ListenSpec {
    pub fn new(transport: Transport, addr: SocketAddr) -> Self {
        ListenSpec { transport, addr }
    }
}

impl fmt::Display for ListenSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport.name(), self.addr)
    }
}

const LISTEN_FORM: &str = "expected TRANSPORT:IP:PORT with TRANSPORT udp, tcp, tls, ws or wss, \
e.g. udp:0.0.0.0:5060, tcp:[::1]:5060, tls:192.0.2.10:5061 or wss:0.0.0.0:8089";

impl FromStr for ListenSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("invalid listen address `{s}`: {LISTEN_FORM}");
        let (proto, rest) = s.split_once(':').ok_or_else(bad)?;
        let transport = Transport::parse(proto).ok_or_else(bad)?;
        let addr: SocketAddr = rest.parse().map_err(|_| bad())?;
        Ok(ListenSpec { transport, addr })
    }
}

/// The `[limits]` table: parser limits plus the connection and timeout limits of the transports.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub max_message_size: Option<usize>,
    pub max_headers: Option<usize>,
    pub max_header_line: Option<usize>,
    pub max_body_size: Option<usize>,
    pub max_connections_per_ip: Option<usize>,
    pub max_connections: Option<usize>,
    pub tls_handshake_timeout_secs: Option<u64>,
    pub idle_timeout_secs: Option<u64>,
    pub first_request_timeout_secs: Option<u64>,
}

/// `palisade.toml` as written. Every key is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallsFile {
    /// Ringing this long without an answer ends the attempt (480).
    pub no_answer_seconds: Option<u64>,
    /// Calls are ended after this long.
    pub max_call_seconds: Option<u64>,
    /// A call whose media stopped this long ago is ended.
    pub media_timeout_seconds: Option<u64>,
    /// An extension with voicemail rings this long before the caller reaches its mailbox.
    pub voicemail_ring_seconds: Option<u64>,
    /// The longest voicemail message.
    pub voicemail_max_message_seconds: Option<u64>,
}

/// Media relay and call timing, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSettings {
    pub rtp_ports: std::ops::RangeInclusive<u16>,
    pub advertise: Option<IpAddr>,
    pub no_answer: Duration,
    pub max_duration: Duration,
    pub media_timeout: Duration,
    pub voicemail_ring: Duration,
    pub voicemail_max_message: Duration,
}

/// Parses "LO-HI" (even LO not required; at least one RTP/RTCP pair).
pub fn parse_port_range(s: &str) -> anyhow::Result<std::ops::RangeInclusive<u16>> {
    let bad = || {
        anyhow::anyhow!(
            "invalid RTP port range `{s}`: expected LO-HI with 1024 <= LO < HI <= 65535, e.g. 10000-20000"
        )
    };
    let (lo, hi) = s.trim().split_once('-').ok_or_else(bad)?;
    let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
    let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
    if lo < 1024 || hi <= lo {
        return Err(bad());
    }
    Ok(lo..=hi)
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `database = "postgres://…"`: PostgreSQL instead of DATA/palisade.db (docs/cluster.md).
    pub database: Option<String>,
    /// `node = "pbx1"`: this node's name in a cluster (docs/cluster.md).
    pub node: Option<String>,
    pub listen: Option<Vec<String>>,
    pub domain: Option<String>,
    pub log_format: Option<LogFormat>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub server_header: Option<String>,
    pub limits: Option<LimitsFile>,
    /// Media relay port range, "LO-HI".
    pub rtp_ports: Option<String>,
    /// Address written into SDP, Via and Contact.
    pub advertise: Option<IpAddr>,
    pub calls: Option<CallsFile>,
    /// Browser origins allowed to open a WebSocket (`Origin` header), e.g. "https://phone.example.com".
    pub ws_allowed_origins: Option<Vec<String>>,
    /// Where the web console and API listen (HTTPS), "IP:PORT"; empty: no console.
    pub admin_listen: Option<Vec<String>>,
    /// Source networks allowed to reach the console and API (CIDR).
    pub admin_networks: Option<Vec<String>>,
    /// Source networks allowed to fetch phone provisioning files under /prov/ (CIDR); default: admin_networks.
    /// A source only in this list reaches nothing else on the admin listener.
    pub provisioning_networks: Option<Vec<String>>,
    /// Ask TLS clients of the admin listener for a certificate (optional) and bind provisioned phones to the one
    /// they present (vendor device certificates). Default false: browsers holding client certificates would be
    /// asked to choose one.
    pub provisioning_client_certs: Option<bool>,
    /// Scheduled backups.
    pub backup: Option<crate::backup::BackupFile>,
    /// Address of the standalone metrics/health listener (plain HTTP); default off.
    pub metrics_listen: Option<SocketAddr>,
    /// Networks besides loopback that may reach it, e.g. ["10.0.0.0/8"].
    pub metrics_allow: Option<Vec<String>>,
    /// Security events to syslog: "udp:HOST:PORT".
    pub syslog: Option<String>,
    /// Bearer token the metrics listener requires (except for /health).
    pub metrics_token: Option<String>,
}

impl FileConfig {
    /// Reads `path`; a missing file is an empty configuration.
    pub fn load(path: &Path) -> anyhow::Result<FileConfig> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileConfig::default()),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot read config file {}", path.display()));
            }
        };
        Self::parse(&text, path)
    }

    /// Parses the text of the file at `path` (the path is only used in error messages).
    pub fn parse(text: &str, path: &Path) -> anyhow::Result<FileConfig> {
        toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| {
                let upto = &text.as_bytes()[..s.start.min(text.len())];
                upto.iter().filter(|&&c| c == b'\n').count() + 1
            });
            let at = line.map(|l| format!(", line {l}")).unwrap_or_default();
            anyhow::anyhow!(
                "invalid config file {}{at}: {}",
                path.display(),
                e.message().trim_end()
            )
        })
    }
}

/// Connection and timeout limits of the stream transports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportLimits {
    /// Open connections per source: an IPv4 address, or an IPv6 /64.
    pub max_connections_per_ip: usize,
    /// Open connections in total; at the cap the oldest connection that never authenticated is closed to make
    /// room (transport/mod.rs).
    pub max_connections: usize,
    pub tls_handshake_timeout: Duration,
    pub idle_timeout: Duration,
    /// A connection that has not sent a valid SIP message this long after it opened is closed.
    pub first_request_timeout: Duration,
    /// Browser origins allowed to upgrade to SIP over WebSocket; empty: none (requests without Origin, from
    /// non-browser clients, are accepted; see transport/ws.rs).
    pub ws_allowed_origins: Vec<String>,
}

impl Default for TransportLimits {
    fn default() -> Self {
        TransportLimits {
            max_connections_per_ip: 32,
            max_connections: 10_000,
            tls_handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            first_request_timeout: Duration::from_secs(30),
            ws_allowed_origins: Vec::new(),
        }
    }
}

/// Where the TLS certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// Generated at first start into DATA/tls and reused after.
    SelfSigned,
    /// PEM files given by the administrator.
    Files { cert: PathBuf, key: PathBuf },
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    /// A postgres:// URL (--database, $PALISADE_DATABASE, or `database` in palisade.toml); `None`: SQLite in
    /// DATA/palisade.db.
    pub database: Option<String>,
    /// This node's name (--node, $PALISADE_NODE, `node` in palisade.toml); `None`: host name and SIP port.
    pub node: Option<String>,
    /// Explicit listeners, or `None` for the defaults (all addresses, IPv4 and IPv6).
    pub listen: Option<Vec<ListenSpec>>,
    pub domain: String,
    /// True when --domain or palisade.toml named the domain; otherwise the stored `domain` setting (set with
    /// `palisade security set domain`) applies, then the host name.
    pub domain_explicit: bool,
    pub log_format: LogFormat,
    pub tls: TlsSource,
    pub server_header: Option<String>,
    pub limits: sip::Limits,
    pub transport_limits: TransportLimits,
    pub calls: CallSettings,
    /// The web console and REST API listener.
    pub admin: AdminListen,
    pub backup: crate::backup::BackupSchedule,
    pub metrics_listen: Option<SocketAddr>,
    pub metrics_allow: Vec<ipnet::IpNet>,
    pub metrics_token: Option<String>,
    pub syslog: Option<crate::syslog::SyslogTarget>,
}

/// Where the console listens and whom it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminListen {
    /// Empty: no console.
    pub listen: Vec<SocketAddr>,
    /// False for the default addresses: then an IPv6 address the host cannot bind is skipped with a warning.
    pub explicit: bool,
    /// Sources outside these networks are refused before TLS.
    pub networks: Vec<ipnet::IpNet>,
    /// Sources that may fetch provisioning files under /prov/ (and nothing else, unless also in `networks`).
    pub provisioning_networks: Vec<ipnet::IpNet>,
    /// Request (never require) a client certificate in the TLS handshake, for binding phones to it.
    pub client_certs: bool,
}

/// The console's default networks: loopback and the private ranges, IPv4 and IPv6 (RFC 1918, RFC 6598 shared
/// address space, IPv4 link-local; IPv6 unique local and link-local).
pub const DEFAULT_ADMIN_NETWORKS: [&str; 9] = [
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
];

/// The console's default port.
pub const DEFAULT_ADMIN_PORT: u16 = 8443;

/// Resolves the console listener from the flags (`--admin-listen`, which wins) and the file.
fn admin_listen(args: &ServeArgs, file: &FileConfig, path: &Path) -> anyhow::Result<AdminListen> {
    let parse_addrs = |list: &[String], what: &str| -> anyhow::Result<Vec<SocketAddr>> {
        if list.len() == 1 && list[0].eq_ignore_ascii_case("off") {
            return Ok(Vec::new());
        }
        list.iter()
            .map(|s| {
                s.parse::<SocketAddr>().map_err(|_| {
                    anyhow::anyhow!(
                        "invalid {what} `{s}`: expected IP:PORT such as 0.0.0.0:8443 or [::1]:8443, or off"
                    )
                })
            })
            .collect()
    };
    let explicit = !args.admin_listen.is_empty() || file.admin_listen.is_some();
    let listen = if !args.admin_listen.is_empty() {
        parse_addrs(&args.admin_listen, "--admin-listen")?
    } else if let Some(list) = &file.admin_listen {
        parse_addrs(list, &format!("admin_listen in {}", path.display()))?
    } else {
        vec![
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), DEFAULT_ADMIN_PORT),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), DEFAULT_ADMIN_PORT),
        ]
    };
    let networks = match &file.admin_networks {
        Some(list) => list
            .iter()
            .map(|s| parse_network(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                anyhow::anyhow!(
                    "invalid config file {}: key `admin_networks`: {e}",
                    path.display()
                )
            })?,
        None => DEFAULT_ADMIN_NETWORKS
            .iter()
            .map(|s| parse_network(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("internal error: {e}"))?,
    };
    let provisioning_networks = match &file.provisioning_networks {
        Some(list) => list
            .iter()
            .map(|s| parse_network(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                anyhow::anyhow!(
                    "invalid config file {}: key `provisioning_networks`: {e}",
                    path.display()
                )
            })?,
        None => networks.clone(),
    };
    Ok(AdminListen {
        listen,
        explicit,
        networks,
        provisioning_networks,
        client_certs: file.provisioning_client_certs.unwrap_or(false),
    })
}

/// A CIDR prefix or a single address (as a /32 or /128).
fn parse_network(s: &str) -> Result<ipnet::IpNet, String> {
    let t = s.trim();
    t.parse::<ipnet::IpNet>()
        .or_else(|_| t.parse::<IpAddr>().map(ipnet::IpNet::from))
        .map(|n| n.trunc())
        .map_err(|_| {
            format!("`{s}` is not an address or CIDR prefix such as 192.168.0.0/16 or fd00::/8")
        })
}

/// The data directory: --data, else $PALISADE_DATA (clap reads it into the same field), else ./palisade-data.
pub fn data_dir(args: &ServeArgs) -> PathBuf {
    args.data
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
}

impl Config {
    /// Reads DATA/palisade.toml and applies the flags over it.
    pub fn load(args: &ServeArgs) -> anyhow::Result<Config> {
        let data_dir = data_dir(args);
        let path = data_dir.join(CONFIG_FILE);
        let file = FileConfig::load(&path)?;
        Config::resolve(args, file, &data_dir, &path)
    }

    /// Merges `file` (read from `path`) and the flags; flags win.
    pub fn resolve(
        args: &ServeArgs,
        file: FileConfig,
        data_dir: &Path,
        path: &Path,
    ) -> anyhow::Result<Config> {
        let admin = admin_listen(args, &file, path)?;
        let listen = if !args.listen.is_empty() {
            Some(args.listen.clone())
        } else if let Some(list) = &file.listen {
            let specs = list
                .iter()
                .map(|s| s.parse::<ListenSpec>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    anyhow::anyhow!("invalid config file {}: key `listen`: {e}", path.display())
                })?;
            if specs.is_empty() {
                bail!(
                    "invalid config file {}: key `listen` is empty; remove it to use the defaults",
                    path.display()
                );
            }
            Some(specs)
        } else {
            None
        };

        let domain_explicit = args.domain.is_some() || file.domain.is_some();
        let domain = args
            .domain
            .clone()
            .or(file.domain)
            .unwrap_or_else(default_domain);
        if domain.is_empty() || domain.chars().any(|c| c.is_whitespace() || c.is_control()) {
            bail!("invalid domain `{domain}`: expected a host name such as pbx.example.com");
        }

        // Paths in the file are relative to the file's directory; paths on the command line to the current one.
        let base = path.parent().unwrap_or(Path::new("."));
        let (cert, key) = match (&args.tls_cert, &args.tls_key) {
            (Some(c), Some(k)) => (Some(c.clone()), Some(k.clone())),
            _ => (
                file.tls_cert.map(|p| base.join(p)),
                file.tls_key.map(|p| base.join(p)),
            ),
        };
        let tls = match (cert, key) {
            (Some(cert), Some(key)) => TlsSource::Files { cert, key },
            (None, None) => TlsSource::SelfSigned,
            _ => bail!(
                "invalid config file {}: tls_cert and tls_key must be given together (or neither, for a \
                 self-signed certificate)",
                path.display()
            ),
        };

        let server_header = match args.server_header.clone().or(file.server_header) {
            None => Some("Palisade".to_string()),
            Some(s) if s.is_empty() => None,
            Some(s) => {
                if s.chars().any(|c| c.is_control()) {
                    bail!("invalid server header: it must not contain control characters");
                }
                Some(s)
            }
        };

        let lf = file.limits.unwrap_or_default();
        let mut limits = sip::Limits::default();
        let mut tl = TransportLimits::default();
        let positive = |key: &str, v: usize| -> anyhow::Result<usize> {
            if v == 0 {
                bail!(
                    "invalid config file {}: [limits] {key} must be greater than 0",
                    path.display()
                );
            }
            Ok(v)
        };
        if let Some(v) = lf.max_message_size {
            limits.max_message_size = positive("max_message_size", v)?;
        }
        if let Some(v) = lf.max_headers {
            limits.max_headers = positive("max_headers", v)?;
        }
        if let Some(v) = lf.max_header_line {
            limits.max_header_line = positive("max_header_line", v)?;
        }
        if let Some(v) = lf.max_body_size {
            limits.max_body_size = v;
        }
        if let Some(v) = lf.max_connections_per_ip {
            tl.max_connections_per_ip = positive("max_connections_per_ip", v)?;
        }
        if let Some(v) = lf.max_connections {
            tl.max_connections = positive("max_connections", v)?;
        }
        if let Some(v) = lf.tls_handshake_timeout_secs {
            tl.tls_handshake_timeout =
                Duration::from_secs(positive("tls_handshake_timeout_secs", v as usize)? as u64);
        }
        if let Some(v) = lf.idle_timeout_secs {
            tl.idle_timeout =
                Duration::from_secs(positive("idle_timeout_secs", v as usize)? as u64);
        }
        if let Some(v) = lf.first_request_timeout_secs {
            tl.first_request_timeout =
                Duration::from_secs(positive("first_request_timeout_secs", v as usize)? as u64);
        }
        if let Some(origins) = file.ws_allowed_origins {
            tl.ws_allowed_origins = origins
                .iter()
                .map(|o| crate::transport::ws::normalize_origin(o))
                .collect::<Result<_, _>>()
                .map_err(|e| {
                    anyhow::anyhow!(
                        "invalid config file {}: key `ws_allowed_origins`: {e}",
                        path.display()
                    )
                })?;
        }

        let rtp_ports = match args.rtp_ports.as_deref().or(file.rtp_ports.as_deref()) {
            Some(r) => parse_port_range(r)?,
            None => 10000..=20000,
        };
        let cf = file.calls.unwrap_or_default();
        let secs = |name: &str, v: Option<u64>, default: u64| -> anyhow::Result<Duration> {
            match v {
                Some(0) => bail!(
                    "[calls] {name} must be at least 1 second (file {})",
                    path.display()
                ),
                Some(v) => Ok(Duration::from_secs(v)),
                None => Ok(Duration::from_secs(default)),
            }
        };
        let calls = CallSettings {
            rtp_ports,
            advertise: args.advertise.or(file.advertise),
            no_answer: secs("no_answer_seconds", cf.no_answer_seconds, 60)?,
            max_duration: secs("max_call_seconds", cf.max_call_seconds, 4 * 3600)?,
            media_timeout: secs("media_timeout_seconds", cf.media_timeout_seconds, 60)?,
            voicemail_ring: secs("voicemail_ring_seconds", cf.voicemail_ring_seconds, 20)?,
            voicemail_max_message: secs(
                "voicemail_max_message_seconds",
                cf.voicemail_max_message_seconds,
                120,
            )?,
        };

        let backup = crate::backup::BackupSchedule::resolve(file.backup.as_ref(), data_dir)
            .with_context(|| format!("invalid config file {}", path.display()))?;
        let metrics_allow = file
            .metrics_allow
            .unwrap_or_default()
            .iter()
            .map(|s| {
                parse_network(s).map_err(|e| {
                    anyhow::anyhow!(
                        "invalid config file {}: key `metrics_allow`: {e}",
                        path.display()
                    )
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let syslog = match (args.syslog, &file.syslog) {
            (Some(t), _) => Some(t),
            (None, Some(s)) => Some(s.parse().map_err(|e| {
                anyhow::anyhow!("invalid config file {}: key `syslog`: {e}", path.display())
            })?),
            (None, None) => None,
        };
        let metrics_token = match file.metrics_token {
            Some(t) if t.len() < 16 || t.chars().any(|c| !c.is_ascii_graphic()) => bail!(
                "invalid config file {}: key `metrics_token` must be at least 16 printable characters without \
                 spaces (e.g. the output of `openssl rand -hex 24`)",
                path.display()
            ),
            t => t,
        };
        Ok(Config {
            admin,
            metrics_token,
            syslog,
            metrics_listen: args.metrics_listen.or(file.metrics_listen),
            metrics_allow,
            backup,
            calls,
            data_dir: data_dir.to_path_buf(),
            database: match args.database.clone().or(file.database) {
                Some(url) if !store::is_postgres_url(&url) => bail!(
                    "invalid database `{}`: expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE (leave it \
                     out for SQLite in the data directory)",
                    store::redact_url(&url)
                ),
                other => other,
            },
            node: match args.node.clone().or(file.node) {
                Some(name) if !pbx::cluster::valid_node_name(&name) => bail!(
                    "invalid node name `{name}`: use 1 to 64 of the characters A-Z a-z 0-9 . _ - (e.g. pbx1)"
                ),
                other => other,
            },
            listen,
            domain,
            domain_explicit,
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            tls,
            server_header,
            limits,
            transport_limits: tl,
        })
    }
}

/// Default listeners: UDP and TCP on 5060 and TLS on 5061, on the IPv6 wildcard (dual-stack where possible)
/// and the IPv4 wildcard. The server binds IPv6 first and skips IPv4 when the IPv6 socket also takes IPv4.
pub fn default_listeners() -> Vec<ListenSpec> {
    let v6 = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
    let v4 = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let mut out = Vec::new();
    for (t, port) in [
        (Transport::Udp, 5060),
        (Transport::Tcp, 5060),
        (Transport::Tls, 5061),
    ] {
        out.push(ListenSpec::new(t, SocketAddr::new(v6, port)));
        out.push(ListenSpec::new(t, SocketAddr::new(v4, port)));
    }
    out
}

/// The machine's host name, else "palisade.local" (shared with the admin commands).
pub fn default_domain() -> String {
    store::settings::default_domain()
}

/// The commented palisade.toml written on first start. Every setting is commented out, so it changes nothing.
pub const DEFAULT_CONFIG_TOML: &str = r##"## Palisade configuration. Command-line flags override these settings.
## Every setting below shows its default; remove the leading "# " to change one.

## Where to listen: TRANSPORT:IP:PORT with TRANSPORT udp, tcp or tls, or ws/wss for SIP over WebSocket
## (RFC 7118; wss uses the TLS certificate), e.g. "wss:0.0.0.0:8089".
## Default: UDP and TCP on 5060, TLS on 5061, all addresses, IPv4 and IPv6 (no WebSocket).
# listen = ["udp:0.0.0.0:5060", "tcp:0.0.0.0:5060", "tls:0.0.0.0:5061"]

## The SIP domain this server is authoritative for. Default: the machine's host name.
# domain = "pbx.example.com"
## The database: PostgreSQL instead of palisade.db in this directory (docs/cluster.md). Prefer ~/.pgpass or
## PGPASSWORD over a password in the URL.
# database = "postgres://palisade@db.example.com/palisade"
## This node's name when several nodes share that database (unique per node). Default: host name and SIP port.
# node = "pbx1"

## Log format: "human" or "json" (one JSON object per line).
# log_format = "human"

## TLS certificate chain and private key (PEM). Relative paths are relative to this directory.
## Default: a self-signed certificate generated on first start in tls/.
# tls_cert = "tls/cert.pem"
# tls_key = "tls/key.pem"

## Server header in responses; "" sends none.
# server_header = "Palisade"

## UDP ports of the media relay, LO-HI (RTP on even ports, RTCP on the next).
# rtp_ports = "10000-20000"

## The address phones reach Palisade at, written into SDP, Via and Contact.
## Default: the first listener with a specific address, else 127.0.0.1.
# advertise = "203.0.113.10"

## Web pages (Origin, scheme://host[:port]) whose scripts may open SIP over WebSocket. Default: none, so a
## browser on any other site is refused with 403 at the upgrade; clients that send no Origin (softphones such
## as baresip or sipp) are not browsers and are accepted.
# ws_allowed_origins = ["https://phone.example.com"]

## The web console and REST API (HTTPS, the same certificate as SIP over TLS). "IP:PORT" each; [] turns it off.
# admin_listen = ["0.0.0.0:8443", "[::]:8443"]
## Sources allowed to reach the console and API; anything else is refused before TLS.
## Default: loopback and the private ranges.
# admin_networks = ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
#                   "169.254.0.0/16", "::1/128", "fc00::/7", "fe80::/10"]
## Sources allowed to fetch phone provisioning files (https://HOST:PORT/prov/<token>/…) and nothing else.
## Default: the same as admin_networks. Widen it for phones outside them (e.g. a home worker's phone).
# provisioning_networks = ["192.168.0.0/16"]
## Ask phones for their (vendor) client certificate when they fetch, and bind each phone to the one it first
## presents. Off by default: a browser that holds client certificates would be asked to pick one (pick none).
# provisioning_client_certs = true
## Serve /metrics (Prometheus), /health and /status over plain HTTP here. Default: off.
# metrics_listen = "127.0.0.1:9090"
## Networks besides loopback allowed to reach it (everything else gets 403).
# metrics_allow = ["10.0.0.0/8"]
## A bearer token Prometheus must send (Authorization: Bearer …) for /metrics and /status. Default: none.
# metrics_token = "replace-with-the-output-of-openssl-rand-hex-24"

## Also send security events (failed logins, bans, throttles, policy refusals) to a SIEM as RFC 5424 syslog
## over UDP. Default: off.
# syslog = "udp:127.0.0.1:514"

# [calls]
## Seconds of ringing without an answer before the caller gets 480.
# no_answer_seconds = 60
## Longest call, in seconds.
# max_call_seconds = 14400
## Seconds without media from a phone before its call is ended.
# media_timeout_seconds = 60
## Seconds an extension with voicemail rings before the caller reaches its mailbox.
# voicemail_ring_seconds = 20
## Longest voicemail message, in seconds.
# voicemail_max_message_seconds = 120

# [limits]
## Largest SIP message, in bytes.
# max_message_size = 65535
## Most header fields in one message.
# max_headers = 128
## Longest header field, in bytes.
# max_header_line = 8192
## Largest message body, in bytes.
# max_body_size = 60000
## Open TCP/TLS connections allowed from one IP address.
# max_connections_per_ip = 32
## Open TCP/TLS connections in total.
# max_connections = 10000
## Seconds a TLS client has to complete its handshake.
# tls_handshake_timeout_secs = 10
## Seconds a TCP/TLS connection may go without a complete message or keep-alive before it is closed.
# idle_timeout_secs = 300
## Seconds a new TCP/TLS/WebSocket connection has to send its first valid SIP message before it is closed.
# first_request_timeout_secs = 30

# [backup]
## Seconds between scheduled backups (database, voicemail, greetings, TLS, this file); 0 turns them off.
# interval_seconds = 86400
## How many scheduled backups to keep; older ones are deleted.
# keep = 7
## Where they are written (relative paths are relative to this directory). Another disk is safer.
# dir = "backups"
"##;

#[cfg(test)]
mod tests {
    use super::*;

    fn path() -> PathBuf {
        PathBuf::from("/srv/pbx/palisade.toml")
    }

    #[test]
    fn listen_specs() {
        let s: ListenSpec = "udp:127.0.0.1:5060".parse().unwrap();
        assert_eq!(
            s,
            ListenSpec::new(Transport::Udp, "127.0.0.1:5060".parse().unwrap())
        );
        let s: ListenSpec = "TLS:[::1]:5061".parse().unwrap();
        assert_eq!(
            s,
            ListenSpec::new(Transport::Tls, "[::1]:5061".parse().unwrap())
        );
        assert_eq!(s.to_string(), "tls:[::1]:5061");
        let s: ListenSpec = "ws:127.0.0.1:8088".parse().unwrap();
        assert_eq!(
            s,
            ListenSpec::new(Transport::Ws, "127.0.0.1:8088".parse().unwrap())
        );
        let s: ListenSpec = "WSS:[::]:8089".parse().unwrap();
        assert_eq!(s.transport, Transport::Wss);
        assert_eq!(s.to_string(), "wss:[::]:8089");
        for bad in [
            "udp",
            "udp:",
            "sctp:1.2.3.4:5060",
            "udp:1.2.3.4",
            "udp:::1:5060",
            "tcp:host:5060",
            ":1.2.3.4:1",
        ] {
            let e = bad.parse::<ListenSpec>().unwrap_err();
            assert!(e.contains("expected TRANSPORT:IP:PORT"), "{bad}: {e}");
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn node_name_from_flag_or_file_and_checked() {
        let resolve = |args: &ServeArgs, text: &str| {
            let file = FileConfig::parse(text, &path()).unwrap();
            Config::resolve(args, file, Path::new("/srv/pbx"), &path())
        };
        assert_eq!(resolve(&ServeArgs::default(), "").unwrap().node, None);
        let c = resolve(&ServeArgs::default(), "node = \"pbx-2\"\n").unwrap();
        assert_eq!(c.node.as_deref(), Some("pbx-2"));
        let flag = ServeArgs {
            node: Some("pbx-3".into()),
            ..ServeArgs::default()
        };
        assert_eq!(
            resolve(&flag, "node = \"pbx-2\"\n")
                .unwrap()
                .node
                .as_deref(),
            Some("pbx-3")
        );
        let e = resolve(&ServeArgs::default(), "node = \"a b\"\n").unwrap_err();
        assert!(e.to_string().contains("invalid node name `a b`"), "{e}");
    }

    #[test]
    fn database_from_flag_or_file_and_only_postgres() {
        let resolve = |args: &ServeArgs, text: &str| {
            let file = FileConfig::parse(text, &path()).unwrap();
            Config::resolve(args, file, Path::new("/srv/pbx"), &path())
        };
        let c = resolve(&ServeArgs::default(), "").unwrap();
        assert_eq!(c.database, None, "SQLite in the data directory by default");
        let c = resolve(
            &ServeArgs::default(),
            "database = \"postgres://pbx@db/palisade\"\n",
        )
        .unwrap();
        assert_eq!(c.database.as_deref(), Some("postgres://pbx@db/palisade"));
        let flag = ServeArgs {
            database: Some("postgresql://other@db2/p".into()),
            ..ServeArgs::default()
        };
        let c = resolve(&flag, "database = \"postgres://pbx@db/palisade\"\n").unwrap();
        assert_eq!(
            c.database.as_deref(),
            Some("postgresql://other@db2/p"),
            "the flag wins"
        );
        let e = resolve(
            &ServeArgs::default(),
            "database = \"mysql://u:hunter22@db/p\"\n",
        )
        .unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("expected postgres://"), "{msg}");
        assert!(
            !msg.contains("hunter22"),
            "the password is not echoed: {msg}"
        );
    }

    #[test]
    fn unknown_key_names_key_and_file() {
        let e = FileConfig::parse("domain = \"a\"\nlisten_on = [\"udp:1.2.3.4:5\"]\n", &path())
            .unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("listen_on"), "{msg}");
        assert!(msg.contains("/srv/pbx/palisade.toml"), "{msg}");
        let e = FileConfig::parse("[limits]\nmax_conns = 3\n", &path()).unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.contains("max_conns") && msg.contains("/srv/pbx/palisade.toml"),
            "{msg}"
        );
    }

    #[test]
    fn websocket_listeners_in_the_file() {
        let file = FileConfig::parse(
            "listen = [\"ws:127.0.0.1:8088\", \"wss:[::]:8089\"]\n",
            &path(),
        )
        .unwrap();
        let c =
            Config::resolve(&ServeArgs::default(), file, Path::new("/srv/pbx"), &path()).unwrap();
        let listen = c.listen.unwrap();
        assert_eq!(
            listen.iter().map(|l| l.transport).collect::<Vec<_>>(),
            [Transport::Ws, Transport::Wss]
        );
        assert!(
            !default_listeners()
                .iter()
                .any(|l| l.transport.is_websocket()),
            "WebSocket only when configured"
        );
    }

    #[test]
    fn flags_override_file() {
        let file = FileConfig::parse(
            "listen = [\"udp:127.0.0.1:5070\"]\ndomain = \"file.example\"\nlog_format = \"json\"\n\
             server_header = \"\"\n[limits]\nmax_connections_per_ip = 4\nidle_timeout_secs = 60\n",
            &path(),
        )
        .unwrap();
        let none = ServeArgs::default();
        let c = Config::resolve(&none, file.clone(), Path::new("/srv/pbx"), &path()).unwrap();
        assert_eq!(c.domain, "file.example");
        assert_eq!(c.listen, Some(vec!["udp:127.0.0.1:5070".parse().unwrap()]));
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.server_header, None);
        assert_eq!(c.transport_limits.max_connections_per_ip, 4);
        assert_eq!(c.transport_limits.idle_timeout, Duration::from_secs(60));
        assert_eq!(c.tls, TlsSource::SelfSigned);

        let flags = ServeArgs {
            listen: vec!["tcp:[::1]:5080".parse().unwrap()],
            domain: Some("flag.example".into()),
            log_format: Some(LogFormat::Human),
            server_header: Some("PBX".into()),
            ..ServeArgs::default()
        };
        let c = Config::resolve(&flags, file, Path::new("/srv/pbx"), &path()).unwrap();
        assert_eq!(c.domain, "flag.example");
        assert_eq!(c.listen, Some(vec!["tcp:[::1]:5080".parse().unwrap()]));
        assert_eq!(c.log_format, LogFormat::Human);
        assert_eq!(c.server_header.as_deref(), Some("PBX"));
    }

    #[test]
    fn defaults() {
        let c = Config::resolve(
            &ServeArgs::default(),
            FileConfig::default(),
            Path::new("d"),
            &path(),
        )
        .unwrap();
        assert_eq!(c.listen, None);
        assert_eq!(c.server_header.as_deref(), Some("Palisade"));
        assert_eq!(c.limits, sip::Limits::default());
        assert_eq!(c.transport_limits, TransportLimits::default());
        assert!(!c.domain.is_empty());
        assert_eq!(default_listeners().len(), 6);
    }

    #[test]
    fn bad_listen_in_file_names_file() {
        let file = FileConfig::parse("listen = [\"udp:nowhere\"]\n", &path()).unwrap();
        let e = Config::resolve(&ServeArgs::default(), file, Path::new("d"), &path()).unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.contains("/srv/pbx/palisade.toml") && msg.contains("expected TRANSPORT:IP:PORT"),
            "{msg}"
        );
    }

    #[test]
    fn tls_files_relative_to_config_dir() {
        let file =
            FileConfig::parse("tls_cert = \"c.pem\"\ntls_key = \"/etc/k.pem\"\n", &path()).unwrap();
        let c = Config::resolve(&ServeArgs::default(), file, Path::new("d"), &path()).unwrap();
        assert_eq!(
            c.tls,
            TlsSource::Files {
                cert: PathBuf::from("/srv/pbx/c.pem"),
                key: PathBuf::from("/etc/k.pem")
            }
        );
        let file = FileConfig::parse("tls_cert = \"c.pem\"\n", &path()).unwrap();
        assert!(Config::resolve(&ServeArgs::default(), file, Path::new("d"), &path()).is_err());
    }

    #[test]
    fn default_file_is_inert_and_every_key_is_valid() {
        let f = FileConfig::parse(DEFAULT_CONFIG_TOML, &path()).unwrap();
        assert!(f.listen.is_none() && f.domain.is_none() && f.limits.is_none());
        // Uncommenting every setting gives a valid file.
        let uncommented: String = DEFAULT_CONFIG_TOML
            .lines()
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        let f = FileConfig::parse(&uncommented, &path()).unwrap();
        let c = Config::resolve(&ServeArgs::default(), f, Path::new("d"), &path()).unwrap();
        assert_eq!(c.limits, sip::Limits::default());
        // The example origin is the one value that is not a default.
        assert_eq!(
            c.transport_limits,
            TransportLimits {
                ws_allowed_origins: vec!["https://phone.example.com".into()],
                ..TransportLimits::default()
            }
        );
        assert_eq!(c.domain, "pbx.example.com");
    }

    #[test]
    fn operations_keys_are_checked() {
        let resolve = |text: &str| {
            let file = FileConfig::parse(text, &path())?;
            Config::resolve(&ServeArgs::default(), file, Path::new("/srv/pbx"), &path())
        };
        let c = resolve(
            "metrics_listen = \"127.0.0.1:9090\"\nmetrics_allow = [\"10.0.0.0/8\", \"192.0.2.7\"]\n\
             syslog = \"udp:127.0.0.1:514\"\n[backup]\ninterval_seconds = 3600\nkeep = 3\n",
        )
        .unwrap();
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9090".parse().unwrap()));
        assert_eq!(c.metrics_allow.len(), 2);
        assert_eq!(
            c.syslog.map(|s| s.0),
            Some("127.0.0.1:514".parse().unwrap())
        );
        assert_eq!(c.backup.keep, 3);
        assert_eq!(c.backup.dir, Path::new("/srv/pbx/backups"));
        for (bad, says) in [
            ("metrics_allow = [\"ten\"]", "metrics_allow"),
            ("syslog = \"tcp:127.0.0.1:514\"", "syslog"),
            ("[backup]\ninterval_seconds = 5", "interval_seconds"),
            ("[backup]\nkeep = 0", "keep"),
            ("[backup]\nevery = 5", "every"),
            ("metrics_token = \"short\"", "metrics_token"),
        ] {
            let e = format!("{:#}", resolve(bad).unwrap_err());
            assert!(e.contains(says), "{bad}: {e}");
        }
        // The commented default file sets nothing.
        assert!(
            resolve(DEFAULT_CONFIG_TOML)
                .unwrap()
                .metrics_listen
                .is_none()
        );
    }

    #[test]
    fn the_packaged_config_is_valid_with_every_example_uncommented() {
        let packaged = include_str!("../../../packaging/palisade.toml");
        let f = FileConfig::parse(packaged, &path()).unwrap();
        assert!(f.listen.is_none() && f.domain.is_none() && f.backup.is_none());
        let uncommented: String = packaged
            .lines()
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        let f = FileConfig::parse(&uncommented, &path()).unwrap();
        let c = Config::resolve(
            &ServeArgs::default(),
            f,
            Path::new("/var/lib/palisade"),
            &path(),
        )
        .unwrap();
        assert_eq!(c.domain, "pbx.example.com");
        assert!(c.metrics_token.is_some() && c.syslog.is_some());
        assert_eq!(c.backup.dir, Path::new("/var/lib/palisade/backups"));
    }
}
