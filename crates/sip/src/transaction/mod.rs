//! The RFC 3261 §17 transaction layer, with the RFC 6026 corrections (the `Accepted` states and timers L and M).
//!
//! # Shape
//!
//! [`TransactionLayer`] is one sans-IO object in the str0m / quinn-proto style. It never touches a socket or a
//! clock: the caller feeds it parsed messages and the current time, and drains what it wants done.
//!
//! * Inputs: [`TransactionLayer::handle_request`] and [`TransactionLayer::handle_response`] for messages from the
//!   network, [`TransactionLayer::send_request`], [`TransactionLayer::cancel`] and [`TransactionLayer::respond`]
//!   from the transaction user (TU), [`TransactionLayer::handle_timeout`] when [`TransactionLayer::poll_timeout`]'s
//!   deadline has passed, [`TransactionLayer::handle_transport_error`] when a [`Transmit`] could not be sent.
//! * Outputs: [`TransactionLayer::poll_output`] yields [`Output::Transmit`] (bytes for a [`Peer`]) and
//!   [`Output::Event`] ([`TuEvent`]: new requests, responses, ACKs for 2xx, CANCELs, timeouts, overload, …).
//!
//! Addresses are opaque: a [`Peer`] (socket address, transport, optional connection id) is whatever the caller
//! gave with the request, and responses go back to it; the binary maps it to a socket or a connection.
//!
//! # Behaviour
//!
//! * Four state machines: INVITE client (Calling, Proceeding, Completed, Accepted; timers A, B, D, M), non-INVITE
//!   client (Trying, Proceeding, Completed; E, F, K), INVITE server (Proceeding, Completed, Confirmed, Accepted;
//!   G, H, I, L) and non-INVITE server (Trying, Proceeding, Completed; J). Terminated is not a state we keep: a
//!   terminated transaction is removed at once and the TU gets [`TuEvent::Terminated`].
//! * Reliable transports turn off the retransmission timers (A, E, G) and make D, I, J and K zero.
//! * Retransmitted requests are absorbed and the last response is sent again; retransmitted responses are
//!   absorbed; the ACK for a non-2xx final response is built and retransmitted by the INVITE client transaction;
//!   an ACK for a 2xx, and 2xx retransmissions in Accepted, go to the TU (RFC 6026).
//! * 100 Trying: an INVITE server transaction sends 100 Trying itself when the TU has not sent any response
//!   [`Timers::trying_delay`] (200 ms) after the INVITE, or at once when the INVITE is retransmitted before then.
//! * Matching: see [`ServerKey`] and [`ClientKey`]; branches without the RFC 3261 cookie (and the bare cookie of
//!   RFC 4475's `badbranch`) fall back to RFC 2543 matching.
//! * Bounded: at most [`Config::max_server_transactions`] server transactions exist, and at most
//!   [`Config::max_server_transactions_per_source`] from one source; beyond either a new request is
//!   handed back as [`TuEvent::Overloaded`] (answer it 503 statelessly) and no state is kept. A CANCEL matching
//!   no INVITE creates none either ([`TuEvent::StrayCancel`]). Client transactions
//!   are capped likewise ([`SendError::Full`]). A server transaction whose TU never sends a final response is
//!   abandoned after [`Timers::invite_server_limit`] (INVITE) or 64·T1 (others), and an INVITE client transaction
//!   left in Proceeding (a 2xx lost and never retransmitted) ends after [`Timers::timer_c`], so every transaction
//!   reaches Terminated.
//! * Timers live in one ordered set keyed by deadline; [`TransactionLayer::poll_timeout`] returns the earliest.

mod client;
mod key;
mod layer;
mod server;
mod timer;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

use crate::message::Message;

pub use key::{ClientKey, KeyError, ServerKey, is_rfc3261_branch};
pub use layer::{TransactionLayer, source_key};

pub use crate::transport::Transport;

/// Where a message came from or goes to. Opaque to the transaction layer except for `transport`'s reliability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub addr: SocketAddr,
    pub transport: Transport,
    /// The connection a stream message arrived on, if the binary tracks one (responses should reuse it).
    pub connection: Option<u64>,
}

impl Peer {
    pub fn new(addr: SocketAddr, transport: Transport) -> Peer {
        Peer {
            addr,
            transport,
            connection: None,
        }
    }
}

/// Timer values (RFC 3261 Appendix A).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timers {
    /// RTT estimate, 500 ms.
    pub t1: Duration,
    /// Longest retransmission interval for non-INVITE requests and INVITE responses, 4 s.
    pub t2: Duration,
    /// Longest time a message stays in the network, 5 s.
    pub t4: Duration,
    /// Timer D on unreliable transports: at least 32 s.
    pub timer_d: Duration,
    /// How long an INVITE server transaction waits for the TU before sending 100 Trying itself; `None` never
    /// sends one (the TU does), zero sends it at once.
    pub trying_delay: Option<Duration>,
    /// How long an INVITE server transaction waits for the TU's final response before giving up.
    pub invite_server_limit: Duration,
    /// Timer C: how long an INVITE client transaction in Proceeding waits for a final response after the last
    /// provisional one (the TU normally CANCELs first). RFC 3261 §16.6 asks for more than 3 minutes.
    pub timer_c: Duration,
}

impl Timers {
    /// 64·T1: timers B, F, H, J, L and M.
    pub fn t1_x64(&self) -> Duration {
        self.t1.saturating_mul(64)
    }
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            timer_d: Duration::from_secs(32),
            trying_delay: Some(Duration::from_millis(200)),
            invite_server_limit: Duration::from_secs(300),
            timer_c: Duration::from_secs(190),
        }
    }
}

/// Configuration of a [`TransactionLayer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub timers: Timers,
    /// Most live server transactions; requests beyond it come back as [`TuEvent::Overloaded`].
    pub max_server_transactions: usize,
    /// Most live client transactions; [`TransactionLayer::send_request`] fails beyond it.
    pub max_client_transactions: usize,
    /// Most live server transactions per source (an IPv4 address, or an IPv6 /64): one source can never fill
    /// the table for everyone else; requests beyond it come back as [`TuEvent::Overloaded`].
    pub max_server_transactions_per_source: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            timers: Timers::default(),
            // Only authenticated requests keep a server transaction (the service answers the rest once), and a
            // completed non-INVITE one lingers 64·T1 = 32 s over UDP: 300,000 sustain 9,000 requests/s.
            max_server_transactions: 300_000,
            // Client transactions are opened only for authenticated calls; an INVITE one lingers 64·T1 after its
            // 2xx (timer M), so the cap must cover call rate × 32 s.
            max_client_transactions: 300_000,
            // Only authenticated requests keep a transaction; over UDP a non-INVITE one lives 32 s (timer J).
            // A source sending below the guard's default amber tier (1,000 packets/s, i.e. at most 500
            // authenticated requests/s with their challenges) for 32 s keeps at most 16,000: it never reaches
            // this, while ten sources are needed to fill the table.
            max_server_transactions_per_source: 30_000,
        }
    }
}

/// Handle of a server transaction, given to the TU with the request it must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerTxId(pub(crate) u64);

impl ServerTxId {
    /// A handle from its number (for simulations and tests that drive a TU without a layer).
    pub fn from_raw(id: u64) -> Self {
        ServerTxId(id)
    }
}

/// Handle of a client transaction, returned by [`TransactionLayer::send_request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientTxId(pub(crate) u64);

/// Either kind of transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxId {
    Client(ClientTxId),
    Server(ServerTxId),
}

/// States of a client transaction (Terminated transactions no longer exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// INVITE: sent, no response yet.
    Calling,
    /// Non-INVITE: sent, no response yet.
    Trying,
    Proceeding,
    Completed,
    /// INVITE after a 2xx (RFC 6026): further 2xx go to the TU until timer M.
    Accepted,
}

/// States of a server transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    /// Non-INVITE: waiting for the TU's first response.
    Trying,
    Proceeding,
    Completed,
    /// INVITE: the ACK for the non-2xx arrived.
    Confirmed,
    /// INVITE after a 2xx (RFC 6026): the TU retransmits the 2xx; the transaction absorbs INVITE copies.
    Accepted,
}

/// What the caller must do next.
#[derive(Debug, Clone)]
pub enum Output {
    Transmit(Transmit),
    Event(TuEvent),
}

/// Bytes to send to a peer. Report a failure to send with [`TransactionLayer::handle_transport_error`].
#[derive(Debug, Clone)]
pub struct Transmit {
    pub peer: Peer,
    pub bytes: Bytes,
    /// The transaction that sent it.
    pub tx: TxId,
}

/// What the transaction layer tells the TU.
#[derive(Debug, Clone)]
pub enum TuEvent {
    /// A new request (not ACK, not CANCEL) created server transaction `tx`; answer it with
    /// [`TransactionLayer::respond`].
    Request {
        tx: ServerTxId,
        request: Message,
        peer: Peer,
    },
    /// A CANCEL created server transaction `tx`. `invite` is the INVITE transaction it cancels: the TU answers
    /// 200 (and 487 to the INVITE if it is still Proceeding). `invite` is `None` only when the INVITE ended
    /// between the two (answer 481); a CANCEL matching nothing is a [`TuEvent::StrayCancel`].
    Cancel {
        tx: ServerTxId,
        request: Message,
        peer: Peer,
        invite: Option<ServerTxId>,
    },
    /// A CANCEL that matches no INVITE server transaction: answer it 481 statelessly. No transaction is created,
    /// so a flood of such CANCELs (which need no credentials) costs no memory; a retransmission is simply
    /// answered again.
    StrayCancel { request: Message, peer: Peer },
    /// An ACK the layer does not absorb: for a 2xx, outside any transaction (`invite: None`), or matching an INVITE
    /// transaction in Accepted.
    Ack {
        request: Message,
        peer: Peer,
        invite: Option<ServerTxId>,
    },
    /// A response for client transaction `tx`: provisional, final, and (RFC 6026) 2xx retransmissions in Accepted.
    Response { tx: ClientTxId, response: Message },
    /// A response that matches no client transaction (e.g. a 2xx retransmitted after timer M).
    StrayResponse { response: Message },
    /// Timer B, C or F (client), H (server, no ACK) or the TU-silence limit (server) fired.
    Timeout { tx: TxId },
    /// The caller reported that a transmit for `tx` failed.
    TransportError { tx: TxId },
    /// No room for a new server transaction: answer `request` 503 statelessly (or drop it).
    Overloaded { request: Message, peer: Peer },
    /// The transaction reached Terminated and is gone; its id will not be used again.
    Terminated { tx: TxId },
}

/// Why [`TransactionLayer::send_request`] refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("cannot match the request: {0}")]
    Key(#[from] KeyError),
    #[error("ACK is not sent in a client transaction")]
    Ack,
    #[error("a client transaction with this branch and method already exists")]
    Duplicate,
    #[error("too many client transactions")]
    Full,
}

/// Why [`TransactionLayer::cancel`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CancelError {
    #[error("no such client transaction")]
    Unknown,
    #[error("only INVITE transactions can be cancelled")]
    NotInvite,
    #[error("the INVITE already has a final response")]
    TooLate,
    #[error("a CANCEL was already requested")]
    AlreadyCancelled,
    #[error("could not build the CANCEL from the INVITE")]
    Build,
    #[error("{0}")]
    Send(#[from] SendError),
}

/// Why [`TransactionLayer::respond`] refused a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RespondError {
    #[error("no such server transaction")]
    Unknown,
    #[error("not a SIP/2.0 response status line")]
    NotAResponse,
    #[error("the transaction cannot send this response in its state")]
    WrongState,
}
