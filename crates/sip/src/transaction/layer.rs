//! [`TransactionLayer`]: the table of live transactions, the timer queue and the output queue.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::time::Instant;

use bytes::Bytes;

use super::client::ClientTx;
use super::server::ServerTx;
use super::timer::TimerQueue;
use super::{
    CancelError, ClientKey, ClientState, ClientTxId, Config, KeyError, Output, Peer, RespondError,
    SendError, ServerKey, ServerState, ServerTxId, Transmit, TuEvent, TxId,
};
use crate::builder::cancel_for;
use crate::limits::Limits;
use crate::message::{Framing, Message};
use crate::method::Method;

/// What a state machine wants after handling an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Stay,
    Terminate,
}

/// The parts every transaction writes to: configuration, timers, outputs.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) cfg: Config,
    pub(crate) timers: TimerQueue,
    out: VecDeque<Output>,
}

impl Shared {
    pub(crate) fn transmit(&mut self, peer: Peer, bytes: Bytes, tx: TxId) {
        self.out
            .push_back(Output::Transmit(Transmit { peer, bytes, tx }));
    }

    pub(crate) fn event(&mut self, ev: TuEvent) {
        self.out.push_back(Output::Event(ev));
    }
}

/// The RFC 3261 §17 transaction layer. See the [module documentation](super).
#[derive(Debug)]
pub struct TransactionLayer {
    sh: Shared,
    next_id: u64,
    /// Boxed, like `clients`: the tables hold tens of thousands of transactions under load, and a table of
    /// pointers doubles its capacity in a few hundred kilobytes where one of inline transactions took tens of
    /// megabytes (which the allocator then keeps).
    servers: HashMap<u64, Box<ServerTx>>,
    server_index: HashMap<ServerKey, u64>,
    clients: HashMap<u64, Box<ClientTx>>,
    client_index: HashMap<ClientKey, u64>,
    /// Live server transactions per source ([`source_key`]), for [`Config::max_server_transactions_per_source`].
    per_source: HashMap<IpAddr, usize>,
}

/// What a source is counted as: an IPv4 address (IPv4-mapped IPv6 included), or an IPv6 /64 (one subscriber
/// usually holds a whole /64), as the guard counts it.
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut seg = v6.segments();
                seg[4..].fill(0);
                IpAddr::V6(Ipv6Addr::from(seg))
            }
        },
    }
}

impl Default for TransactionLayer {
    fn default() -> Self {
        TransactionLayer::new(Config::default())
    }
}

impl TransactionLayer {
    pub fn new(cfg: Config) -> Self {
        TransactionLayer {
            sh: Shared {
                cfg,
                timers: TimerQueue::default(),
                out: VecDeque::new(),
            },
            next_id: 1,
            servers: HashMap::new(),
            server_index: HashMap::new(),
            clients: HashMap::new(),
            client_index: HashMap::new(),
            per_source: HashMap::new(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.sh.cfg
    }

    fn alloc_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    // ----- inputs from the network -----

    /// A request arrived from `peer`. Retransmissions are absorbed (the last response is sent again), ACKs are
    /// matched to their INVITE transaction, anything new becomes a server transaction and a [`TuEvent`]. An error
    /// means the request cannot be matched at all (no usable Via, CSeq, …): the caller answers 400 or drops it.
    pub fn handle_request(
        &mut self,
        request: Message,
        peer: Peer,
        now: Instant,
    ) -> Result<(), KeyError> {
        let key = ServerKey::from_request(&request)?;
        let method = request.method();
        let found = self.server_index.get(&key).copied();

        if method == Some(Method::Ack) {
            let step = match found
                .and_then(|id| self.servers.get_mut(&id))
                .filter(|tx| tx.invite)
            {
                Some(tx) => Some((tx.id, tx.on_ack(request, peer, &mut self.sh, now))),
                None => {
                    self.sh.event(TuEvent::Ack {
                        request,
                        peer,
                        invite: None,
                    });
                    None
                }
            };
            if let Some((id, step)) = step {
                self.finish_server(id, step);
            }
            return Ok(());
        }

        if let Some(tx) = found.and_then(|id| self.servers.get_mut(&id)) {
            tx.on_retransmission(&mut self.sh);
            return Ok(());
        }

        let cancelled = (method == Some(Method::Cancel))
            .then(|| self.server_index.get(&key.cancelled_invite()).copied())
            .flatten()
            .map(ServerTxId);
        if method == Some(Method::Cancel) && cancelled.is_none() {
            self.sh.event(TuEvent::StrayCancel { request, peer });
            return Ok(());
        }

        let source = source_key(peer.addr.ip());
        let from_source = self.per_source.get(&source).copied().unwrap_or(0);
        if self.servers.len() >= self.sh.cfg.max_server_transactions
            || from_source >= self.sh.cfg.max_server_transactions_per_source
        {
            self.sh.event(TuEvent::Overloaded { request, peer });
            return Ok(());
        }

        let id = self.alloc_id();
        let tx = ServerTx::start(id, key.clone(), request.clone(), peer, &mut self.sh, now);
        self.server_index.insert(key, id);
        self.servers.insert(id, Box::new(tx));
        self.per_source.insert(source, from_source + 1);
        let ev = if method == Some(Method::Cancel) {
            TuEvent::Cancel {
                tx: ServerTxId(id),
                request,
                peer,
                invite: cancelled,
            }
        } else {
            TuEvent::Request {
                tx: ServerTxId(id),
                request,
                peer,
            }
        };
        self.sh.event(ev);
        Ok(())
    }

    /// A response arrived. It goes to its client transaction, or to the TU as [`TuEvent::StrayResponse`] when it
    /// matches none. An error means it cannot be matched at all (no Via branch, no CSeq): drop it.
    pub fn handle_response(&mut self, response: Message, now: Instant) -> Result<(), KeyError> {
        let key = ClientKey::from_response(&response)?;
        let Some(tx) = self
            .client_index
            .get(&key)
            .and_then(|id| self.clients.get_mut(id))
        else {
            self.sh.event(TuEvent::StrayResponse { response });
            return Ok(());
        };
        let id = tx.id;
        let step = tx.on_response(response, &mut self.sh, now);
        // A CANCEL asked for while Calling goes out with the first provisional response (§9.1).
        // If a final response came first, the CANCEL is moot and never sent.
        let deferred = match self.clients.get_mut(&id) {
            Some(tx) if tx.state == ClientState::Proceeding && step == Step::Stay => {
                tx.deferred_cancel.take().map(|c| (c, tx.peer))
            }
            Some(tx) if tx.state != ClientState::Calling => {
                if let Some((cancel_id, _, _)) = tx.deferred_cancel.take() {
                    self.sh.event(TuEvent::Terminated {
                        tx: TxId::Client(ClientTxId(cancel_id)),
                    });
                }
                None
            }
            _ => None,
        };
        if let Some(((cancel_id, cancel_key, cancel), peer)) = deferred {
            self.start_client(cancel_id, cancel_key, cancel, peer, now);
        }
        self.finish_client(id, step);
        Ok(())
    }

    /// The caller could not send a [`Transmit`] of transaction `tx` (connection gone, ICMP error, …): the
    /// transaction ends and the TU is told.
    pub fn handle_transport_error(&mut self, tx: TxId, _now: Instant) {
        let exists = match tx {
            TxId::Client(ClientTxId(id)) => self.clients.contains_key(&id),
            TxId::Server(ServerTxId(id)) => self.servers.contains_key(&id),
        };
        if !exists {
            return;
        }
        self.sh.event(TuEvent::TransportError { tx });
        match tx {
            TxId::Client(ClientTxId(id)) => self.finish_client(id, Step::Terminate),
            TxId::Server(ServerTxId(id)) => self.finish_server(id, Step::Terminate),
        }
    }

    /// Fires every timer due at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((id, kind)) = self.sh.timers.pop_due(now) {
            if let Some(tx) = self.clients.get_mut(&id) {
                TimerQueue::fired(&mut tx.armed, kind);
                let step = tx.on_timer(kind, &mut self.sh, now);
                self.finish_client(id, step);
            } else if let Some(tx) = self.servers.get_mut(&id) {
                TimerQueue::fired(&mut tx.armed, kind);
                let step = tx.on_timer(kind, &mut self.sh, now);
                self.finish_server(id, step);
            }
        }
    }

    // ----- inputs from the TU -----

    /// Starts a client transaction for `request` (not ACK) towards `peer` and sends it. The request's top Via must
    /// carry a branch unique to this transaction.
    pub fn send_request(
        &mut self,
        request: Message,
        peer: Peer,
        now: Instant,
    ) -> Result<ClientTxId, SendError> {
        if request.method() == Some(Method::Ack) {
            return Err(SendError::Ack);
        }
        let key = ClientKey::from_request(&request)?;
        if self.client_index.contains_key(&key) {
            return Err(SendError::Duplicate);
        }
        if self.clients.len() >= self.sh.cfg.max_client_transactions {
            return Err(SendError::Full);
        }
        let id = self.alloc_id();
        self.start_client(id, key, request, peer, now);
        Ok(ClientTxId(id))
    }

    fn start_client(
        &mut self,
        id: u64,
        key: ClientKey,
        request: Message,
        peer: Peer,
        now: Instant,
    ) {
        let tx = ClientTx::start(id, key.clone(), request, peer, &mut self.sh, now);
        self.client_index.insert(key, id);
        self.clients.insert(id, Box::new(tx));
    }

    /// Cancels the INVITE client transaction `invite` (§9.1): builds the CANCEL and sends it in a client
    /// transaction of its own, at once when a provisional response has arrived, otherwise when the first one does.
    /// The CANCEL's transactions are not counted against the client cap (there is at most one per INVITE).
    pub fn cancel(&mut self, invite: ClientTxId, now: Instant) -> Result<ClientTxId, CancelError> {
        let tx = self.clients.get(&invite.0).ok_or(CancelError::Unknown)?;
        if !tx.invite {
            return Err(CancelError::NotInvite);
        }
        if tx.cancel_requested {
            return Err(CancelError::AlreadyCancelled);
        }
        if !matches!(tx.state, ClientState::Calling | ClientState::Proceeding) {
            return Err(CancelError::TooLate);
        }
        let bytes = cancel_for(&tx.request).ok_or(CancelError::Build)?;
        let cancel = Message::parse(bytes, Framing::Stream, &Limits::default())
            .map_err(|_| CancelError::Build)?;
        let key = ClientKey::from_request(&cancel).map_err(SendError::from)?;
        if self.client_index.contains_key(&key) {
            return Err(SendError::Duplicate.into());
        }
        let (state, peer) = (tx.state, tx.peer);
        let id = self.alloc_id();
        if let Some(tx) = self.clients.get_mut(&invite.0) {
            tx.cancel_requested = true;
            if state == ClientState::Calling {
                tx.deferred_cancel = Some((id, key, cancel));
                return Ok(ClientTxId(id));
            }
        }
        self.start_client(id, key, cancel, peer, now);
        Ok(ClientTxId(id))
    }

    /// The TU answers server transaction `tx` with an encoded response (status line first). Provisional responses
    /// may be repeated; a 2xx to an INVITE may be retransmitted by the TU while the transaction is Accepted.
    pub fn respond(
        &mut self,
        tx: ServerTxId,
        response: Bytes,
        now: Instant,
    ) -> Result<(), RespondError> {
        let t = self.servers.get_mut(&tx.0).ok_or(RespondError::Unknown)?;
        let step = t.respond(response, &mut self.sh, now)?;
        self.finish_server(tx.0, step);
        Ok(())
    }

    /// Sends a final response (any but a 2xx to an INVITE) once and ends server transaction `tx` at once, without timer G's
    /// retransmissions: for answers to unauthenticated requests (401/407 challenges), so that one spoofed INVITE
    /// cannot make Palisade send eleven responses to its victim (reflection amplification). If the response is
    /// lost, the client retransmits its request and gets a fresh answer. A 1xx or 2xx goes through [`Self::respond`].
    pub fn respond_once(
        &mut self,
        tx: ServerTxId,
        response: Bytes,
        now: Instant,
    ) -> Result<(), RespondError> {
        let status = super::server::status_of(&response).ok_or(RespondError::NotAResponse)?;
        let t = self.servers.get(&tx.0).ok_or(RespondError::Unknown)?;
        // Provisional responses, and a 2xx to an INVITE (which the TU retransmits itself), keep the transaction.
        if status < 200 || (t.invite && status < 300) {
            return self.respond(tx, response, now);
        }
        let peer = t.peer;
        self.sh.transmit(peer, response, TxId::Server(tx));
        self.finish_server(tx.0, Step::Terminate);
        Ok(())
    }

    // ----- outputs -----

    /// The next thing to send or to tell the TU.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.sh.out.pop_front()
    }

    /// When [`TransactionLayer::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sh.timers.next()
    }

    // ----- queries -----

    pub fn server_state(&self, tx: ServerTxId) -> Option<ServerState> {
        self.servers.get(&tx.0).map(|t| t.state)
    }

    pub fn client_state(&self, tx: ClientTxId) -> Option<ClientState> {
        self.clients.get(&tx.0).map(|t| t.state)
    }

    /// The request that created server transaction `tx` (to build a response from).
    pub fn server_request(&self, tx: ServerTxId) -> Option<&Message> {
        self.servers.get(&tx.0).map(|t| &t.request)
    }

    /// The peer server transaction `tx` answers to.
    pub fn server_peer(&self, tx: ServerTxId) -> Option<Peer> {
        self.servers.get(&tx.0).map(|t| t.peer)
    }

    /// The server transaction a request belongs to, if it exists (ACK: its INVITE's).
    pub fn find_server(&self, request: &Message) -> Option<ServerTxId> {
        let key = ServerKey::from_request(request).ok()?;
        self.server_index.get(&key).copied().map(ServerTxId)
    }

    pub fn server_count(&self) -> usize {
        self.servers.len()
    }

    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// Armed timers (for tests and metrics).
    pub fn timer_count(&self) -> usize {
        self.sh.timers.len()
    }

    // ----- removal -----

    fn finish_client(&mut self, id: u64, step: Step) {
        if step != Step::Terminate {
            return;
        }
        let Some(mut tx) = self.clients.remove(&id) else {
            return;
        };
        self.sh.timers.cancel_all(&mut tx.armed, id);
        self.client_index.remove(&tx.key);
        self.sh.event(TuEvent::Terminated {
            tx: TxId::Client(ClientTxId(id)),
        });
        if let Some((cancel_id, _, _)) = tx.deferred_cancel.take() {
            // The CANCEL never went out: the INVITE ended first.
            self.sh.event(TuEvent::Terminated {
                tx: TxId::Client(ClientTxId(cancel_id)),
            });
        }
    }

    fn finish_server(&mut self, id: u64, step: Step) {
        if step != Step::Terminate {
            return;
        }
        let Some(mut tx) = self.servers.remove(&id) else {
            return;
        };
        self.sh.timers.cancel_all(&mut tx.armed, id);
        self.server_index.remove(&tx.key);
        let source = source_key(tx.peer.addr.ip());
        if let Some(n) = self.per_source.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                self.per_source.remove(&source);
            }
        }
        self.sh.event(TuEvent::Terminated {
            tx: TxId::Server(ServerTxId(id)),
        });
    }
}
