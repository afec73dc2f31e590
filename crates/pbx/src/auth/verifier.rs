//! The digest policy: which challenges Palisade sends and which answers it accepts. Sans-IO: the time and the
//! transport source address are inputs; credentials come from a lookup the caller passes in.
//!
//! Decisions:
//! - **qop=auth is required.** An RFC 2069 answer (no `qop`) has no `nc`/`cnonce`, hence no replay protection:
//!   [`FailReason::QopRequired`]. Every phone in use sends `qop=auth` when the challenge offers it.
//! - **Only offered algorithms**, never `-sess` and never `userhash`.
//! - **The digest `uri` must name the Request-URI or this server** ([`uri_matches`]): equal ignoring ASCII
//!   case, or equal ignoring case once URI parameters and headers (from the first `;` or `?`) are dropped on both
//!   sides, or a SIP/SIPS URI whose user (when it has one) is the Request-URI's and whose host is the
//!   Request-URI's or one of [`ServerNames`] (the domain, an address Palisade listens on or advertises, with or
//!   without one of its ports). Phones copy the Request-URI verbatim; sipp and others write the server's address
//!   (`sip:SERVER_IP:PORT` for `REGISTER sip:DOMAIN`), which Kamailio accepts too. Another host or another user
//!   is still refused. The response hash is always computed over the `uri` the client sent.
//! - **Unknown users cost the same as known ones.** A missing user, a missing HA1 for the algorithm and a
//!   disabled extension all compute a response (against a random dummy HA1 when there is none) and compare it
//!   in constant time; the [`FailReason`] tells them apart for the security log, the caller answers the same.
//! - **Stale only for the right password.** A stale nonce is reported as [`AuthOutcome::Stale`] only when the
//!   response is otherwise right, so a guesser never gets `stale=true` as a free retry.
//! - **The replay table is consulted last**, after the password check: only authenticated requests can enter it.
//! - ACK and CANCEL cannot be challenged (RFC 3261 §22.1): do not verify them, an ACK repeating its INVITE's
//!   Authorization would be reported as a replay.

use std::borrow::Borrow;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use sip::digest::{self, Algorithm, Challenge, DigestAuthorization, DigestError};
use subtle::ConstantTimeEq;

use super::credentials::Credentials;
use super::nonce::{DEFAULT_NONCE_LIFETIME, NonceCheck, NonceKey, NonceSigner, SALT_LEN};
use super::replay::{DEFAULT_REPLAY_CAPACITY, NcVerdict, ReplayTable, RequestFingerprint};

/// How Palisade challenges and verifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierConfig {
    /// The realm in every challenge; an answer for another realm fails.
    pub realm: String,
    /// Algorithms offered, in order of preference: one challenge header per algorithm, in this order
    /// (RFC 8760 §2.4). Default `[MD5]`, what deployed phones speak.
    pub algorithms: Vec<Algorithm>,
    /// How long a nonce is valid. Default 300 s.
    pub nonce_lifetime: Duration,
    /// Bound on the nonce-count table. Default 100,000.
    pub replay_capacity: usize,
    /// Bind nonces to the client's source address. Default off: see [`super::nonce`] for why.
    pub bind_nonce_to_source: bool,
    /// What a digest `uri` may name besides the Request-URI. Default: nothing.
    pub server_names: ServerNames,
}

/// The names this server answers to: the host names (its domain), the addresses it listens on or advertises, and
/// its ports. A digest `uri` naming one of them names this server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerNames {
    hosts: Vec<String>,
    ips: Vec<IpAddr>,
    ports: Vec<u16>,
}

impl ServerNames {
    /// `hosts` (compared ignoring ASCII case) and `addresses` (their IPs and ports); duplicates are dropped.
    pub fn new<'a>(
        hosts: impl IntoIterator<Item = &'a str>,
        addresses: impl IntoIterator<Item = std::net::SocketAddr>,
    ) -> Self {
        let mut names = ServerNames::default();
        for h in hosts {
            let h = h.trim().to_ascii_lowercase();
            if !h.is_empty() && !names.hosts.contains(&h) {
                names.hosts.push(h);
            }
        }
        for a in addresses {
            let ip = canonical_ip(a.ip());
            if !ip.is_unspecified() && !names.ips.contains(&ip) {
                names.ips.push(ip);
            }
            if a.port() != 0 && !names.ports.contains(&a.port()) {
                names.ports.push(a.port());
            }
        }
        names
    }

    /// Whether `host` (with `port`, if written) is this server.
    fn names(&self, host: &sip::uri::Host<'_>, port: Option<u16>) -> bool {
        let host_is_ours = match host.ip() {
            Some(ip) => self.ips.contains(&canonical_ip(ip)),
            None => self.hosts.contains(&host.to_string().to_ascii_lowercase()),
        };
        host_is_ours && port.is_none_or(|p| self.ports.contains(&p))
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl VerifierConfig {
    /// The defaults for `realm`: MD5, 300 s nonces, 100,000 tracked nonces, no source binding.
    pub fn new(realm: impl Into<String>) -> Self {
        VerifierConfig {
            realm: realm.into(),
            algorithms: vec![Algorithm::Md5],
            nonce_lifetime: DEFAULT_NONCE_LIFETIME,
            replay_capacity: DEFAULT_REPLAY_CAPACITY,
            bind_nonce_to_source: false,
            server_names: ServerNames::default(),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.realm.is_empty() {
            return Err(ConfigError::EmptyRealm);
        }
        if self.realm.chars().any(char::is_control) {
            return Err(ConfigError::RealmControlCharacter);
        }
        if self.algorithms.is_empty() {
            return Err(ConfigError::NoAlgorithm);
        }
        for (i, alg) in self.algorithms.iter().enumerate() {
            if alg.is_session() {
                return Err(ConfigError::SessionAlgorithm(*alg));
            }
            if self.algorithms[..i].contains(alg) {
                return Err(ConfigError::DuplicateAlgorithm(*alg));
            }
        }
        if self.nonce_lifetime.is_zero() {
            return Err(ConfigError::ZeroNonceLifetime);
        }
        if self.replay_capacity == 0 {
            return Err(ConfigError::ZeroReplayCapacity);
        }
        Ok(())
    }
}

/// A [`VerifierConfig`] that cannot work, or no entropy to start with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("the digest realm is empty: set a realm (usually the PBX's domain name)")]
    EmptyRealm,
    #[error("the digest realm contains a control character: use printable characters only")]
    RealmControlCharacter,
    #[error("no digest algorithm is offered: offer MD5, SHA-256 or both")]
    NoAlgorithm,
    #[error("digest algorithm {0} is not offered by Palisade: use MD5 or SHA-256")]
    SessionAlgorithm(Algorithm),
    #[error("digest algorithm {0} is listed twice")]
    DuplicateAlgorithm(Algorithm),
    #[error("the nonce lifetime is zero: use a few minutes (default 300 s)")]
    ZeroNonceLifetime,
    #[error(
        "the replay table capacity is zero: use at least the number of phones (default 100,000)"
    )]
    ZeroReplayCapacity,
    #[error("the operating system's random number generator failed: {0}")]
    Entropy(#[from] rand::Error),
}

/// The result of checking an `Authorization` / `Proxy-Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// Authenticated as `username` (the auth ID).
    Ok { username: String },
    /// The right answer to an expired (or evicted) nonce: challenge again with [`DigestVerifier::stale_challenge`].
    Stale,
    /// Refused. Answer with a fresh [`DigestVerifier::challenge`] whatever the reason: the reason is for the
    /// security log only. `username` is the one claimed, when the header could be parsed.
    Fail {
        reason: FailReason,
        username: Option<String>,
    },
}

/// Why an answer was refused (for the security event; never sent to the client).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FailReason {
    #[error("unknown user")]
    UnknownUser,
    #[error("wrong password")]
    WrongPassword,
    #[error("extension disabled")]
    Disabled,
    #[error("no stored HA1 for the algorithm the client used")]
    NoHa1ForAlgorithm,
    #[error("nonce not issued by this server (forged, tampered, other realm or key)")]
    BadNonce,
    #[error("nonce count replayed")]
    Replay,
    #[error("digest algorithm {0} was not offered")]
    AlgorithmNotOffered(Algorithm),
    #[error("qop=auth is required")]
    QopRequired,
    #[error("malformed credentials: {0}")]
    Malformed(DigestError),
    #[error("authorization scheme is not Digest")]
    UnsupportedScheme,
    #[error("realm does not match")]
    RealmMismatch,
    #[error("digest uri does not match the Request-URI")]
    UriMismatch,
}

/// Challenges and verifies digest answers for one realm.
#[derive(Debug)]
pub struct DigestVerifier {
    config: VerifierConfig,
    signer: NonceSigner,
    replay: ReplayTable,
    rng: StdRng,
    dummy_ha1_md5: String,
    dummy_ha1_sha256: String,
    responses_computed: u64,
}

impl DigestVerifier {
    /// A verifier whose salts come from a CSPRNG seeded by the operating system.
    pub fn new(config: VerifierConfig, key: NonceKey) -> Result<Self, ConfigError> {
        let rng = StdRng::from_rng(rand::rngs::OsRng)?;
        Self::with_rng(config, key, rng)
    }

    /// A verifier with a deterministic salt generator (tests and simulations only).
    pub fn with_seed(
        config: VerifierConfig,
        key: NonceKey,
        seed: [u8; 32],
    ) -> Result<Self, ConfigError> {
        Self::with_rng(config, key, StdRng::from_seed(seed))
    }

    fn with_rng(
        config: VerifierConfig,
        key: NonceKey,
        mut rng: StdRng,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        let secret: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        Ok(DigestVerifier {
            signer: NonceSigner::new(&key, config.nonce_lifetime),
            replay: ReplayTable::new(config.replay_capacity, config.nonce_lifetime),
            dummy_ha1_md5: digest::ha1(Algorithm::Md5, "", &config.realm, &secret),
            dummy_ha1_sha256: digest::ha1(Algorithm::Sha256, "", &config.realm, &secret),
            config,
            rng,
            responses_computed: 0,
        })
    }

    pub fn config(&self) -> &VerifierConfig {
        &self.config
    }

    /// What a digest `uri` may name besides the Request-URI (the listeners and the advertised address, once
    /// known).
    pub fn set_server_names(&mut self, names: ServerNames) {
        self.config.server_names = names;
    }

    /// Signs new nonces with `key`; nonces signed with the previous key stay valid until they expire.
    pub fn rotate_key(&mut self, key: &NonceKey) {
        self.signer.rotate(key);
    }

    /// `WWW-Authenticate` / `Proxy-Authenticate` values, one per offered algorithm, in the configured order.
    pub fn challenge(&mut self, now: SystemTime, source: IpAddr) -> Vec<String> {
        self.challenges(now, source, false)
    }

    /// Like [`Self::challenge`] with `stale=true`: the answer to [`AuthOutcome::Stale`].
    pub fn stale_challenge(&mut self, now: SystemTime, source: IpAddr) -> Vec<String> {
        self.challenges(now, source, true)
    }

    fn challenges(&mut self, now: SystemTime, source: IpAddr, stale: bool) -> Vec<String> {
        let algorithms = self.config.algorithms.clone();
        self.challenge_with(&algorithms, now, source, stale)
    }

    /// Challenge values for the given algorithms (a per-extension list), in that order, sharing one nonce.
    pub fn challenge_with(
        &mut self,
        algorithms: &[Algorithm],
        now: SystemTime,
        source: IpAddr,
        stale: bool,
    ) -> Vec<String> {
        let mut salt = [0u8; SALT_LEN];
        self.rng.fill_bytes(&mut salt);
        // One nonce for all algorithms: the client answers one of them.
        let nonce = self
            .signer
            .issue(now, salt, &self.config.realm, self.binding(source));
        algorithms
            .iter()
            .map(|&algorithm| {
                Challenge {
                    realm: &self.config.realm,
                    nonce: &nonce,
                    opaque: None,
                    algorithm,
                    stale,
                }
                .to_string()
            })
            .collect()
    }

    fn binding(&self, source: IpAddr) -> Option<IpAddr> {
        self.config.bind_nonce_to_source.then_some(source)
    }

    /// Checks an `Authorization` / `Proxy-Authorization` value (raw, as received) for a request with `method`
    /// and `request_uri`, from transport address `source`, at `now`. `lookup` maps the claimed user name (auth
    /// ID) to its credentials; it is called only once the header, realm, algorithm, uri and nonce are in order,
    /// and then always exactly once.
    pub fn verify<C, F>(
        &mut self,
        authorization: &str,
        method: &str,
        request_uri: &str,
        lookup: F,
        now: SystemTime,
        source: IpAddr,
    ) -> AuthOutcome
    where
        C: Borrow<Credentials>,
        F: FnOnce(&str) -> Option<C>,
    {
        self.verify_inner(
            authorization,
            method,
            request_uri,
            None,
            lookup,
            now,
            source,
        )
    }

    /// As [`Verifier::verify`], for a request answered without a server transaction: `fingerprint` identifies
    /// the request, so that its retransmission (the same bytes within 32 s) is accepted again instead of being
    /// refused as a nonce-count replay ([`super::replay`]).
    #[allow(clippy::too_many_arguments)]
    pub fn verify_request<C, F>(
        &mut self,
        authorization: &str,
        method: &str,
        request_uri: &str,
        fingerprint: RequestFingerprint,
        lookup: F,
        now: SystemTime,
        source: IpAddr,
    ) -> AuthOutcome
    where
        C: Borrow<Credentials>,
        F: FnOnce(&str) -> Option<C>,
    {
        self.verify_inner(
            authorization,
            method,
            request_uri,
            Some(fingerprint),
            lookup,
            now,
            source,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn verify_inner<C, F>(
        &mut self,
        authorization: &str,
        method: &str,
        request_uri: &str,
        fingerprint: Option<RequestFingerprint>,
        lookup: F,
        now: SystemTime,
        source: IpAddr,
    ) -> AuthOutcome
    where
        C: Borrow<Credentials>,
        F: FnOnce(&str) -> Option<C>,
    {
        let auth = match DigestAuthorization::parse(authorization) {
            Ok(auth) => auth,
            Err(DigestError::UnsupportedScheme(_)) => {
                return fail(FailReason::UnsupportedScheme, None);
            }
            Err(e) => return fail(FailReason::Malformed(e), None),
        };
        let refuse = |reason| fail(reason, Some(&auth));
        if auth.realm != self.config.realm {
            return refuse(FailReason::RealmMismatch);
        }
        if !self.config.algorithms.contains(&auth.algorithm) {
            return refuse(FailReason::AlgorithmNotOffered(auth.algorithm));
        }
        let Some(nc) = auth.nc.filter(|_| auth.qop.is_some()) else {
            return refuse(FailReason::QopRequired);
        };
        if !uri_matches(&auth.uri, request_uri, &self.config.server_names) {
            return refuse(FailReason::UriMismatch);
        }
        let (nonce, stale) =
            match self
                .signer
                .check(&auth.nonce, now, &self.config.realm, self.binding(source))
            {
                NonceCheck::Valid(info) => (info, false),
                NonceCheck::Stale(info) => (info, true),
                NonceCheck::Invalid => return refuse(FailReason::BadNonce),
            };

        let stored = lookup(&auth.username);
        let stored = stored.as_ref().map(Borrow::borrow);
        let dummy = match auth.algorithm {
            Algorithm::Md5 | Algorithm::Md5Sess => &self.dummy_ha1_md5,
            Algorithm::Sha256 | Algorithm::Sha256Sess => &self.dummy_ha1_sha256,
        };
        let (ha1, problem) = match stored {
            None => (dummy.as_str(), Some(FailReason::UnknownUser)),
            Some(c) => match c.ha1(auth.algorithm) {
                None => (dummy.as_str(), Some(FailReason::NoHa1ForAlgorithm)),
                Some(h) if c.disabled => (h, Some(FailReason::Disabled)),
                Some(h) => (h, None),
            },
        };
        let expected = auth.expected_response(ha1, method);
        self.responses_computed += 1;
        let right = responses_equal(&expected, &auth.response);
        if let Some(reason) = problem {
            return refuse(reason);
        }
        if !right {
            return refuse(FailReason::WrongPassword);
        }
        if stale {
            return AuthOutcome::Stale;
        }
        let verdict = match fingerprint {
            Some(f) => self.replay.check_request(nonce, nc.value, f, now),
            None => self.replay.check(nonce, nc.value, now),
        };
        match verdict {
            NcVerdict::Fresh | NcVerdict::Retransmission => AuthOutcome::Ok {
                username: auth.username.into_owned(),
            },
            NcVerdict::Replay => refuse(FailReason::Replay),
            NcVerdict::Forgotten => AuthOutcome::Stale,
        }
    }

    /// How many responses were computed so far (one per answer that got as far as the password check, whether
    /// or not the user exists).
    pub fn responses_computed(&self) -> u64 {
        self.responses_computed
    }

    /// How many nonces the replay table tracks (bounded by [`VerifierConfig::replay_capacity`]).
    pub fn replay_entries(&self) -> usize {
        self.replay.len()
    }
}

fn fail(reason: FailReason, auth: Option<&DigestAuthorization<'_>>) -> AuthOutcome {
    AuthOutcome::Fail {
        reason,
        username: auth.map(|a| a.username.clone().into_owned()),
    }
}

/// Constant-time comparison of the expected lower-case hex response with the client's (hex case ignored).
/// Only the length, which the client chose, can end it early.
fn responses_equal(expected: &str, given: &str) -> bool {
    if expected.len() != given.len() {
        return false;
    }
    let given: Vec<u8> = given.bytes().map(|b| b.to_ascii_lowercase()).collect();
    bool::from(expected.as_bytes().ct_eq(&given))
}

/// Whether the digest `uri` names the Request-URI: equal ignoring ASCII case, or equal ignoring case once
/// parameters and headers (from the first `;` or `?`) are dropped from both, or — for SIP URIs — naming the same
/// target ([`same_target`]). The response hash covers the digest `uri`, so what matters is that it binds the
/// answer to this server and to the Request-URI's user; the nonce count already prevents replay.
pub fn uri_matches(digest_uri: &str, request_uri: &str, server: &ServerNames) -> bool {
    let (d, r) = (digest_uri.trim(), request_uri.trim());
    d.eq_ignore_ascii_case(r)
        || uri_resource(d).eq_ignore_ascii_case(uri_resource(r))
        || same_target(d, r, server)
}

/// A SIP/SIPS digest `uri` that names the Request-URI's user, or no user (sipp 3.6 hashes `sip:HOST:PORT` for an
/// INVITE to `sip:USER@HOST:PORT`), at the Request-URI's host and port, or at this server written any way it
/// can be reached (sipp answers `REGISTER sip:DOMAIN` with `uri="sip:SERVER_IP:PORT"`).
fn same_target(digest_uri: &str, request_uri: &str, server: &ServerNames) -> bool {
    let (Ok(d), Ok(r)) = (
        sip::uri::Uri::parse(digest_uri.as_bytes()),
        sip::uri::Uri::parse(request_uri.as_bytes()),
    ) else {
        return false;
    };
    let Some(d_host) = d.host else {
        return false;
    };
    let same_user = match (d.user, r.user) {
        (None, _) => true,
        (Some(du), Some(ru)) => du == ru,
        (Some(_), None) => false,
    };
    let lower = |h: &sip::uri::Host<'_>| h.to_string().to_ascii_lowercase();
    let request_host = d.scheme == r.scheme
        && r.host.as_ref().is_some_and(|h| lower(h) == lower(&d_host))
        && d.port == r.port;
    d.is_sip() && same_user && (request_host || server.names(&d_host, d.port))
}

/// A URI without its parameters and headers.
fn uri_resource(uri: &str) -> &str {
    uri.split([';', '?']).next().unwrap_or(uri)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    const T0: u64 = 1_700_000_000;
    const REALM: &str = "pbx.example.com";
    const USER: &str = "k3XgQ9pLm2";
    const PASSWORD: &str = "Vb7nQ2xZ8wR4";
    const RURI: &str = "sip:pbx.example.com";

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn src() -> IpAddr {
        "192.0.2.7".parse().unwrap()
    }

    fn verifier(algorithms: &[Algorithm]) -> DigestVerifier {
        let mut config = VerifierConfig::new(REALM);
        config.algorithms = algorithms.to_vec();
        DigestVerifier::with_seed(config, NonceKey::from_bytes([1; 32]), [2; 32]).unwrap()
    }

    fn creds() -> Credentials {
        Credentials::from_password(USER, REALM, PASSWORD)
    }

    fn nonce_of(challenge: &str) -> String {
        let start = challenge.find("nonce=\"").unwrap() + 7;
        let end = challenge[start..].find('"').unwrap() + start;
        challenge[start..end].to_owned()
    }

    /// What a phone sends back.
    #[allow(clippy::too_many_arguments)]
    fn answer(
        alg: Algorithm,
        user: &str,
        password: &str,
        nonce: &str,
        nc: u32,
        method: &str,
        uri: &str,
    ) -> String {
        let ha1 = digest::ha1(alg, user, REALM, password);
        let nc = format!("{nc:08x}");
        let resp = digest::response(
            alg,
            &ha1,
            nonce,
            &nc,
            "0a4f113b",
            Some(digest::Qop::Auth),
            method,
            uri,
        );
        format!(
            "Digest username=\"{user}\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{uri}\", \
             response=\"{resp}\", algorithm={alg}, cnonce=\"0a4f113b\", qop=auth, nc={nc}"
        )
    }

    fn check(v: &mut DigestVerifier, header: &str, now: SystemTime) -> AuthOutcome {
        let stored = creds();
        v.verify(
            header,
            "REGISTER",
            RURI,
            |u| (u == USER).then_some(&stored),
            now,
            src(),
        )
    }

    fn failed(reason: FailReason) -> AuthOutcome {
        AuthOutcome::Fail {
            reason,
            username: Some(USER.into()),
        }
    }

    fn ok() -> AuthOutcome {
        AuthOutcome::Ok {
            username: USER.into(),
        }
    }

    #[test]
    fn right_credentials_succeed_md5_and_sha256() {
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            let mut v = verifier(&[alg]);
            let c = v.challenge(at(T0), src());
            assert_eq!(c.len(), 1);
            let n = nonce_of(&c[0]);
            let h = answer(alg, USER, PASSWORD, &n, 1, "REGISTER", RURI);
            assert_eq!(check(&mut v, &h, at(T0 + 1)), ok(), "{alg}");
        }
    }

    #[test]
    fn wrong_password_fails() {
        let mut v = verifier(&[Algorithm::Md5]);
        let n = nonce_of(&v.challenge(at(T0), src())[0]);
        let h = answer(
            Algorithm::Md5,
            USER,
            "wrong-password",
            &n,
            1,
            "REGISTER",
            RURI,
        );
        assert_eq!(check(&mut v, &h, at(T0)), failed(FailReason::WrongPassword));
        // Same answer for another method than the one signed.
        let h = answer(Algorithm::Md5, USER, PASSWORD, &n, 2, "INVITE", RURI);
        assert_eq!(check(&mut v, &h, at(T0)), failed(FailReason::WrongPassword));
    }

    #[test]
    fn stale_after_lifetime_only_with_the_right_password() {
        let mut v = verifier(&[Algorithm::Md5]);
        let n = nonce_of(&v.challenge(at(T0), src())[0]);
        let h = answer(Algorithm::Md5, USER, PASSWORD, &n, 1, "REGISTER", RURI);
        assert_eq!(check(&mut v, &h, at(T0 + 301)), AuthOutcome::Stale);
        let bad = answer(Algorithm::Md5, USER, "guess-guess", &n, 1, "REGISTER", RURI);
        assert_eq!(
            check(&mut v, &bad, at(T0 + 301)),
            failed(FailReason::WrongPassword)
        );
        let stale = v.stale_challenge(at(T0 + 301), src());
        assert!(stale[0].ends_with(", stale=true"), "{}", stale[0]);
        let n2 = nonce_of(&stale[0]);
        let h = answer(Algorithm::Md5, USER, PASSWORD, &n2, 1, "REGISTER", RURI);
        assert_eq!(check(&mut v, &h, at(T0 + 302)), ok());
    }

    #[test]
    fn tampered_nonce_is_refused() {
        let mut v = verifier(&[Algorithm::Md5]);
        let n = nonce_of(&v.challenge(at(T0), src())[0]);
        let mut t = n.into_bytes();
        t[10] = if t[10] == b'x' { b'y' } else { b'x' };
        let t = String::from_utf8(t).unwrap();
        let h = answer(Algorithm::Md5, USER, PASSWORD, &t, 1, "REGISTER", RURI);
        assert_eq!(check(&mut v, &h, at(T0)), failed(FailReason::BadNonce));
        let h = answer(
            Algorithm::Md5,
            USER,
            PASSWORD,
            "made-up",
            1,
            "REGISTER",
            RURI,
        );
        assert_eq!(check(&mut v, &h, at(T0)), failed(FailReason::BadNonce));
        // A nonce from another server (another key) is not ours either.
        let mut other = DigestVerifier::with_seed(
            VerifierConfig::new(REALM),
            NonceKey::from_bytes([9; 32]),
            [2; 32],
        )
        .unwrap();
        let n = nonce_of(&other.challenge(at(T0), src())[0]);
        let h = answer(Algorithm::Md5, USER, PASSWORD, &n, 1, "REGISTER", RURI);
        assert_eq!(check(&mut v, &h, at(T0)), failed(FailReason::BadNonce));
    }

    #[test]
    fn replayed_nc_refused_increasing_nc_accepted() {
        let mut v = verifier(&[Algorithm::Md5]);
        let n = nonce_of(&v.challenge(at(T0), src())[0]);
        let h1 = answer(Algorithm::Md5, USER, PASSWORD, &n, 1, "REGISTER", RURI);
        assert_eq!(check(&mut v, &h1, at(T0)), ok());
        assert_eq!(check(&mut v, &h1, at(T0 + 1)), failed(FailReason::Replay));
        let h2 = answer(Algorithm::Md5, USER, PASSWORD, &n, 2, "REGISTER", RURI);
        assert_eq!(check(&mut v, &h2, at(T0 + 2)), ok());
        let h9 = answer(Algorithm::Md5, USER, PASSWORD, &n, 9, "INVITE", RURI);
        let stored = creds();
        assert_eq!(
            v.verify(&h9, "INVITE", RURI, |_| Some(&stored), at(T0 + 3), src()),
            ok()
        );
        assert_eq!(check(&mut v, &h2, at(T0 + 4)), failed(FailReason::Replay));
        assert_eq!(v.replay_entries(), 1);
        // A wrong password never reaches the table (no poisoning with high counts).
        let n2 = nonce_of(&v.challenge(at(T0), src())[0]);
        let bad = answer(
            Algorithm::Md5,
            USER,
            "nope-nope-nope",
            &n2,
            0xffff_ffff,
            "REGISTER",
            RURI,
        );
        assert_eq!(
            check(&mut v, &bad, at(T0)),
            failed(FailReason::WrongPassword)
        );
        assert_eq!(v.replay_entries(), 1);
        let good = answer(Algorithm::Md5, USER, PASSWORD, &n2, 1, "REGISTER", RURI);
        assert_eq!(check(&mut v, &good, at(T0)), ok());
    }

    #[test]
    fn evicted_nonce_gets_stale_not_ok() {
        let mut config = VerifierConfig::new(REALM);
        config.replay_capacity = 1;
        let mut v =
            DigestVerifier::with_seed(config, NonceKey::from_bytes([1; 32]), [2; 32]).unwrap();
        let a = nonce_of(&v.challenge(at(T0), src())[0]);
        let b = nonce_of(&v.challenge(at(T0 + 1), src())[0]);
        let ha = answer(Algorithm::Md5, USER, PASSWORD, &a, 1, "REGISTER", RURI);
        let hb = answer(Algorithm::Md5, USER, PASSWORD, &b, 1, "REGISTER", RURI);
        assert_eq!(check(&mut v, &ha, at(T0 + 2)), ok());
        assert_eq!(check(&mut v, &hb, at(T0 + 2)), ok()); // evicts a
        assert_eq!(v.replay_entries(), 1);
        assert_eq!(check(&mut v, &ha, at(T0 + 3)), AuthOutcome::Stale);
    }

    #[test]
    fn challenge_order_follows_the_config() {
        let mut v = verifier(&[Algorithm::Sha256, Algorithm::Md5]);
        let c = v.challenge(at(T0), src());
        assert_eq!(c.len(), 2);
        assert!(c[0].contains("algorithm=SHA-256"), "{}", c[0]);
        assert!(c[1].contains("algorithm=MD5"), "{}", c[1]);
        assert!(c[0].starts_with("Digest realm=\"pbx.example.com\", nonce=\""));
        assert!(c[0].ends_with("qop=\"auth\""));
        assert_eq!(nonce_of(&c[0]), nonce_of(&c[1]));
        // Either algorithm answers it.
        let n = nonce_of(&c[0]);
        let h = answer(Algorithm::Md5, USER, PASSWORD, &n, 1, "REGISTER", RURI);
        assert_eq!(check(&mut v, &h, at(T0)), ok());
        let h = answer(Algorithm::Sha256, USER, PASSWORD, &n, 2, "REGISTER", RURI);
        assert_eq!(check(&mut v, &h, at(T0)), ok());
        // Fresh challenges carry fresh nonces.
        assert_ne!(nonce_of(&v.challenge(at(T0), src())[0]), n);
    }

    #[test]
    fn algorithm_not_offered() {
        let mut v = verifier(&[Algorithm::Md5]);
        let n = nonce_of(&v.challenge(at(T0), src())[0]);
        let h = answer(Algorithm::Sha256, USER, PASSWORD, &n, 1, "REGISTER", RURI);
        assert_eq!(
            check(&mut v, &h, at(T0)),
            failed(FailReason::AlgorithmNotOffered(Algorithm::Sha256))
        );
        let h = answer(Algorithm::Md5Sess, USER, PASSWORD, &n, 1, "REGISTER", RURI);
        assert_eq!(
            check(&mut v, &h, at(T0)),
            failed(FailReason::AlgorithmNotOffered(Algorithm::Md5Sess))
        );
    }

    #[test]
    fn unknown_user_does_the_same_work_and_gets_the_same_outcome_kind() {
        let mut v = verifier(&[Algorithm::Md5]);
        let n = nonce_of(&v.challenge(at(T0), src())[0]);
        let before = v.responses_computed();
        let h = answer(Algorithm::Md5, "nobody", PASSWORD, &n, 1, "REGISTER", RURI);
        let mut looked_up = None;
        let outcome = v.verify(
            &h,
            "REGISTER",
            RURI,
            |u| {
                looked_up = Some(u.to_owned());
                None::<Credentials>
            },
            at(T0),
            src(),
        );
        assert_eq!(looked_up.as_deref(), Some("nobody"));
        assert_eq!(
            outcome,
            AuthOutcome::Fail {
                reason: FailReason::UnknownUser,
                username: Some("nobody".into())
            }
        );
        assert_eq!(
            v.responses_computed(),
            before + 1,
            "a response was computed"
        );
        let h = answer(Algorithm::Md5, USER, "wrong-pass!", &n, 1, "REGISTER", RURI);
        assert!(matches!(
            check(&mut v, &h, at(T0)),
            AuthOutcome::Fail { .. }
        ));
        assert_eq!(v.responses_computed(), before + 2);
    }

    #[test]
    fn disabled_and_missing_ha1_are_refused_after_the_same_work() {
        let mut v = verifier(&[Algorithm::Md5, Algorithm::Sha256]);
        let n = nonce_of(&v.challenge(at(T0), src())[0]);
        let mut disabled = creds();
        disabled.disabled = true;
        let h = answer(Algorithm::Md5, USER, PASSWORD, &n, 1, "REGISTER", RURI);
        assert_eq!(
            v.verify(
                &h,
                "REGISTER",
                RURI,
                |_| Some(disabled.clone()),
                at(T0),
                src()
            ),
            failed(FailReason::Disabled)
        );
        let md5_only = Credentials {
            ha1_sha256: None,
            ..creds()
        };
        let h = answer(Algorithm::Sha256, USER, PASSWORD, &n, 1, "REGISTER", RURI);
        assert_eq!(
            v.verify(&h, "REGISTER", RURI, |_| Some(&md5_only), at(T0), src()),
            failed(FailReason::NoHa1ForAlgorithm)
        );
        assert_eq!(v.responses_computed(), 2);
        assert_eq!(v.replay_entries(), 0);
    }

    #[test]
    fn uri_realm_scheme_qop_and_syntax() {
        let mut v = verifier(&[Algorithm::Md5]);
        let n = nonce_of(&v.challenge(at(T0), src())[0]);
        let h = answer(
            Algorithm::Md5,
            USER,
            PASSWORD,
            &n,
            1,
            "REGISTER",
            "sip:evil.example.com",
        );
        assert_eq!(check(&mut v, &h, at(T0)), failed(FailReason::UriMismatch));
        let other_realm = answer(Algorithm::Md5, USER, PASSWORD, &n, 1, "REGISTER", RURI)
            .replace("realm=\"pbx.example.com\"", "realm=\"elsewhere\"");
        assert_eq!(
            check(&mut v, &other_realm, at(T0)),
            failed(FailReason::RealmMismatch)
        );
        assert_eq!(
            check(&mut v, "NoOneKnowsThisScheme opaque-data=here", at(T0)),
            AuthOutcome::Fail {
                reason: FailReason::UnsupportedScheme,
                username: None
            }
        );
        assert!(matches!(
            check(&mut v, "Digest username=\"x", at(T0)),
            AuthOutcome::Fail {
                reason: FailReason::Malformed(DigestError::Syntax { .. }),
                username: None
            }
        ));
        // RFC 2069 form (no qop): refused.
        let ha1 = digest::ha1(Algorithm::Md5, USER, REALM, PASSWORD);
        let resp = digest::response(Algorithm::Md5, &ha1, &n, "", "", None, "REGISTER", RURI);
        let legacy = format!(
            "Digest username=\"{USER}\", realm=\"{REALM}\", nonce=\"{n}\", uri=\"{RURI}\", response=\"{resp}\""
        );
        assert_eq!(
            check(&mut v, &legacy, at(T0)),
            failed(FailReason::QopRequired)
        );
        // Still nothing recorded and the right answer works.
        let h = answer(Algorithm::Md5, USER, PASSWORD, &n, 1, "REGISTER", RURI);
        assert_eq!(check(&mut v, &h, at(T0)), ok());
    }

    #[test]
    fn upper_case_hex_response_is_accepted() {
        let mut v = verifier(&[Algorithm::Md5]);
        let n = nonce_of(&v.challenge(at(T0), src())[0]);
        let h = answer(Algorithm::Md5, USER, PASSWORD, &n, 1, "REGISTER", RURI);
        let start = h.find("response=\"").unwrap() + 10;
        let upper = format!(
            "{}{}{}",
            &h[..start],
            h[start..start + 32].to_ascii_uppercase(),
            &h[start + 32..]
        );
        assert_eq!(check(&mut v, &upper, at(T0)), ok());
    }

    fn matches(d: &str, r: &str) -> bool {
        uri_matches(d, r, &ServerNames::default())
    }

    fn server() -> ServerNames {
        ServerNames::new(
            ["PBX.example.com"],
            [
                "127.0.0.1:5070".parse().unwrap(),
                "[::1]:5071".parse().unwrap(),
                "203.0.113.10:5070".parse().unwrap(),
            ],
        )
    }

    #[test]
    fn a_uri_naming_this_server_is_accepted_another_host_or_user_is_not() {
        let s = server();
        let yes = |d: &str, r: &str| assert!(uri_matches(d, r, &s), "{d} for {r}");
        let no = |d: &str, r: &str| assert!(!uri_matches(d, r, &s), "{d} for {r}");
        // sipp's REGISTER: the server's address for a Request-URI naming the domain
        yes("sip:127.0.0.1:5070", "sip:pbx.example.com");
        yes("sip:127.0.0.1", "sip:pbx.example.com");
        yes("sips:203.0.113.10:5070", "sip:pbx.example.com");
        yes("sip:[::1]:5071", "sip:pbx.example.com");
        yes("sip:pbx.example.com:5071", "sip:127.0.0.1:5070");
        yes("sip:101@127.0.0.1:5070", "sip:101@pbx.example.com");
        yes(
            "sip:127.0.0.1:5070;transport=udp",
            "sip:101@pbx.example.com",
        );
        // another host, another port, another user
        no("sip:192.0.2.9:5070", "sip:pbx.example.com");
        no("sip:evil.example.com", "sip:pbx.example.com");
        no("sip:127.0.0.1:5999", "sip:pbx.example.com");
        no("sip:102@127.0.0.1:5070", "sip:101@pbx.example.com");
        no("sip:101@127.0.0.1:5070", "sip:pbx.example.com");
        no("tel:+15551234", "sip:pbx.example.com");
        // without server names only the Request-URI's own host counts
        assert!(!matches("sip:127.0.0.1:5070", "sip:pbx.example.com"));
        // the unspecified address is never one of ours
        let any = ServerNames::new([], ["0.0.0.0:5060".parse().unwrap()]);
        assert!(!uri_matches("sip:0.0.0.0:5060", "sip:pbx", &any));
    }

    #[test]
    fn a_uri_naming_this_server_verifies() {
        let mut v = verifier(&[Algorithm::Md5]);
        v.set_server_names(server());
        let n = nonce_of(&v.challenge(at(T0), src())[0]);
        let h = answer(
            Algorithm::Md5,
            USER,
            PASSWORD,
            &n,
            1,
            "REGISTER",
            "sip:127.0.0.1:5070",
        );
        assert_eq!(check(&mut v, &h, at(T0)), ok());
        let h = answer(
            Algorithm::Md5,
            USER,
            PASSWORD,
            &n,
            2,
            "REGISTER",
            "sip:192.0.2.1:5070",
        );
        assert_eq!(check(&mut v, &h, at(T0)), failed(FailReason::UriMismatch));
    }

    #[test]
    fn uri_matching_rules() {
        let uri_matches = matches;
        assert!(uri_matches("sip:pbx.example.com", "sip:pbx.example.com"));
        assert!(uri_matches("SIP:PBX.example.com", "sip:pbx.example.com"));
        assert!(uri_matches(
            "sip:pbx.example.com",
            "sip:pbx.example.com;transport=tcp"
        ));
        assert!(uri_matches(" sip:100@pbx ", "sip:100@pbx"));
        assert!(!uri_matches(
            "sip:pbx.example.com:5061",
            "sip:pbx.example.com"
        ));
        assert!(!uri_matches("sip:101@pbx", "sip:100@pbx"));
        assert!(!uri_matches("sips:pbx", "sip:pbx"));
        assert!(!uri_matches("", "sip:pbx"));
        // sipp 3.6's form for an INVITE: the server's host and port without the user
        assert!(uri_matches("sip:127.0.0.1:5070", "sip:101@127.0.0.1:5070"));
        assert!(!uri_matches("sip:127.0.0.1:5071", "sip:101@127.0.0.1:5070"));
        assert!(!uri_matches("sip:192.0.2.9:5070", "sip:101@127.0.0.1:5070"));
    }

    #[test]
    fn source_binding_when_configured() {
        let mut config = VerifierConfig::new(REALM);
        config.bind_nonce_to_source = true;
        let mut v =
            DigestVerifier::with_seed(config, NonceKey::from_bytes([1; 32]), [2; 32]).unwrap();
        let n = nonce_of(&v.challenge(at(T0), src())[0]);
        let h = answer(Algorithm::Md5, USER, PASSWORD, &n, 1, "REGISTER", RURI);
        let stored = creds();
        let elsewhere: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(
            v.verify(&h, "REGISTER", RURI, |_| Some(&stored), at(T0), elsewhere),
            failed(FailReason::BadNonce)
        );
        assert_eq!(check(&mut v, &h, at(T0)), ok());
        // Unbound (the default): another source address is fine.
        let mut v = verifier(&[Algorithm::Md5]);
        let n = nonce_of(&v.challenge(at(T0), src())[0]);
        let h = answer(Algorithm::Md5, USER, PASSWORD, &n, 1, "REGISTER", RURI);
        assert_eq!(
            v.verify(&h, "REGISTER", RURI, |_| Some(&stored), at(T0), elsewhere),
            ok()
        );
    }

    #[test]
    fn key_rotation_keeps_nonces_in_flight() {
        let mut v = verifier(&[Algorithm::Md5]);
        let n = nonce_of(&v.challenge(at(T0), src())[0]);
        v.rotate_key(&NonceKey::from_bytes([5; 32]));
        let h = answer(Algorithm::Md5, USER, PASSWORD, &n, 1, "REGISTER", RURI);
        assert_eq!(check(&mut v, &h, at(T0)), ok());
    }

    #[test]
    fn config_validation() {
        let key = || NonceKey::from_bytes([1; 32]);
        let mut c = VerifierConfig::new("");
        assert!(matches!(
            DigestVerifier::new(c.clone(), key()),
            Err(ConfigError::EmptyRealm)
        ));
        c.realm = "pbx".into();
        c.algorithms = vec![];
        assert!(matches!(
            DigestVerifier::new(c.clone(), key()),
            Err(ConfigError::NoAlgorithm)
        ));
        c.algorithms = vec![Algorithm::Md5, Algorithm::Md5];
        assert!(matches!(
            DigestVerifier::new(c.clone(), key()),
            Err(ConfigError::DuplicateAlgorithm(Algorithm::Md5))
        ));
        c.algorithms = vec![Algorithm::Sha256Sess];
        let e = DigestVerifier::new(c.clone(), key()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "digest algorithm SHA-256-sess is not offered by Palisade: use MD5 or SHA-256"
        );
        c.algorithms = vec![Algorithm::Sha256, Algorithm::Md5];
        c.nonce_lifetime = Duration::ZERO;
        assert!(matches!(
            DigestVerifier::new(c.clone(), key()),
            Err(ConfigError::ZeroNonceLifetime)
        ));
        c.nonce_lifetime = DEFAULT_NONCE_LIFETIME;
        c.realm = "a\r\nb".into();
        assert!(matches!(
            DigestVerifier::new(c.clone(), key()),
            Err(ConfigError::RealmControlCharacter)
        ));
        c.realm = "pbx".into();
        assert!(DigestVerifier::new(c, key()).is_ok());
    }
}
