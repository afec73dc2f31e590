//! Digest authentication (RFC 7616 / RFC 8760), the policy side: challenges, stateless nonces, nonce-count replay
//! protection, verification and extension credentials. The wire format and the hash arithmetic live in
//! [`sip::digest`]. Sans-IO: `now` and the source address are always parameters.
//!
//! Typical use by the registrar (one verifier per realm, shared behind a lock):
//! 1. request without credentials → `401` with one `WWW-Authenticate` per value of [`DigestVerifier::challenge`];
//! 2. request with `Authorization` → [`DigestVerifier::verify`]:
//!    [`AuthOutcome::Ok`] → proceed as that auth ID; [`AuthOutcome::Stale`] → `401` with
//!    [`DigestVerifier::stale_challenge`]; [`AuthOutcome::Fail`] → the same `401` as step 1 (whatever the reason,
//!    which only goes to the security event).

pub mod credentials;
pub mod nonce;
pub mod replay;
pub mod verifier;

pub use credentials::{
    CredentialError, Credentials, PasswordError, check_manual_password, generate_auth_id,
    generate_password, random_alnum,
};
pub use nonce::{NonceCheck, NonceKey, NonceSigner};
pub use replay::{NcVerdict, ReplayTable};
pub use verifier::{
    AuthOutcome, ConfigError, DigestVerifier, FailReason, ServerNames, VerifierConfig,
};
