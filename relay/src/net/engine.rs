//! The media engine: worker threads that move every call's datagrams
//! through its sans-IO [`CallMedia`]. Each worker owns its calls outright
//! (their sockets, their media, their timers), so nothing is shared between
//! calls on the packet path: no task per call, no wake-up per packet, no
//! lock. A worker sleeps in one `epoll` over all its calls' sockets
//! (through `mio`), reads each ready socket until it is empty (a budget per
//! turn keeps a flood on one call from starving the others), and runs its
//! calls' timers from one heap (each call has one deadline: its DTLS
//! timer during the handshake, else once a second).
//!
//! With a shared browser port (`[media] browser_port`), each worker has
//! one socket for all its calls' browsers: a datagram finds its call by
//! its source address once a check from there passed, and a check from a
//! new address by the ICE username it carries (ours names the call).
//! Toward the PBX each call keeps its own RTP and RTCP ports.
//!
//! The signalling reaches a call through [`Engine::open`],
//! [`Engine::apply`] and [`Engine::close`]; every call opened reports its
//! end exactly once on the channel [`Engine::start`] returns.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tracing::{debug, error, warn};

use super::media::{Ended, Held, MediaFigures, MediaSockets};
use crate::ids::MediaId;
use crate::media::call::{CallMedia, Over};
use crate::media::calls::Command;
use crate::media::ice;
use crate::media::session::{Forward, MAX_LEGS};

/// Biggest datagram carried; RTP over UDP stays under it. A bigger one
/// (read one byte longer, to see it) is dropped rather than cut short.
const MAX_DATAGRAM: usize = 1500;
/// Room after a read for what protecting adds (SRTCP with GCM: 20 bytes)
/// and for a STUN answer longer than its request.
const HEADROOM: usize = 128;
/// How often a call publishes its figures for `/metrics`.
const PUBLISH: Duration = Duration::from_secs(1);
/// Datagrams read from one socket before the worker turns to the others.
const BUDGET: usize = 32;
/// The same for the shared browser port, which carries many calls.
const SHARED_BUDGET: usize = 256;
/// Browser addresses a call keeps on the shared port (its verified ones).
const ADDRS: usize = 4;
/// The shared browser port's socket buffers: 4 MiB, ≈ 4,000 packets
/// (as the kernel counts them) arriving faster than the worker reads.
const SHARED_BUFFER: usize = 4 << 20;
/// ICE username fragments a call keeps (the current and, after a
/// restart, the previous).
const UFRAGS: usize = 2;
/// A call's sockets: the browser's, then each leg's RTP and RTCP.
const PER_CALL: usize = 1 + 2 * MAX_LEGS;
/// The token of a worker's waker (commands are waiting).
const WAKE: Token = Token(usize::MAX);
/// The token of a worker's shared browser port.
const SHARED: Token = Token(usize::MAX - 1);

/// What the signalling sends a worker (a command boxed: it is large, and
/// comes at the signalling's pace).
enum Msg {
    Open(MediaId, MediaSockets),
    Apply(Box<Command>),
    Close(MediaId),
}

/// One worker as the signalling sees it.
struct Handle {
    tx: Sender<Msg>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

/// The media workers. Dropping the engine stops them; their calls end as
/// [`Ended::Stopped`].
pub struct Engine {
    workers: Vec<Handle>,
}

impl Engine {
    /// Starts `workers` threads (at least one). A call answered and then
    /// silent for `idle` ends; every call publishes its figures to
    /// `figures`. With `shared`, worker `i` serves every browser of its
    /// calls on `shared`'s port plus `i` (see [`MediaId::worker`]). Each
    /// call's end comes out of the returned channel once, with its id.
    pub fn start(
        workers: usize,
        idle: Duration,
        figures: MediaFigures,
        shared: Option<SocketAddr>,
    ) -> io::Result<(Engine, UnboundedReceiver<(MediaId, Ended)>)> {
        let (ended, ends) = unbounded_channel();
        let mut engine = Engine {
            workers: Vec::with_capacity(workers.max(1)),
        };
        for i in 0..workers.max(1) {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
            let (tx, rx) = channel();
            let shared = match shared {
                Some(base) => Some(bind_shared(&poll, base, i)?),
                None => None,
            };
            let worker = Worker {
                shared,
                shared_busy: false,
                by_addr: HashMap::new(),
                by_ufrag: HashMap::new(),
                poll,
                rx,
                calls: Slab::new(),
                ids: HashMap::new(),
                timers: BinaryHeap::new(),
                busy: Vec::new(),
                buf: vec![0; MAX_DATAGRAM + HEADROOM].into_boxed_slice(),
                next_generation: 0,
                idle,
                figures: figures.clone(),
                ended: ended.clone(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("sipline-media-{i}"))
                .spawn(move || worker.run())?;
            engine.workers.push(Handle {
                tx,
                waker,
                thread: Some(thread),
            });
        }
        Ok((engine, ends))
    }

    /// How many worker threads carry the media.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Starts moving a call's media through `sockets`; fails only when its
    /// worker is gone.
    pub fn open(&self, id: MediaId, sockets: MediaSockets) -> Result<(), Ended> {
        self.send(id, Msg::Open(id, sockets)).map_err(|_| {
            Ended::Io(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the media worker is gone",
            ))
        })
    }

    /// Hands a call what the signalling decided (an unknown call's is
    /// dropped: it ended meanwhile).
    pub fn apply(&self, command: Command) {
        let _ = self.send(command.id(), Msg::Apply(Box::new(command)));
    }

    /// Ends a call's media: it reports [`Ended::Stopped`].
    pub fn close(&self, id: MediaId) {
        let _ = self.send(id, Msg::Close(id));
    }

    fn send(&self, id: MediaId, msg: Msg) -> Result<(), ()> {
        let worker = &self.workers[id.worker(self.workers.len())];
        worker.tx.send(msg).map_err(|_| ())?;
        worker
            .waker
            .wake()
            .map_err(|e| error!(error = %e, "media worker not woken"))
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        for worker in &mut self.workers {
            // Its channel closes with the sender: the worker ends its calls
            // and returns once woken.
            let (tx, _) = channel();
            drop(std::mem::replace(&mut worker.tx, tx));
            let _ = worker.waker.wake();
        }
        for worker in &mut self.workers {
            if let Some(thread) = worker.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

/// One call as its worker holds it.
struct Call {
    id: MediaId,
    /// Tells this call from an earlier one in the same slot (for the
    /// timers and busy sockets left behind).
    generation: u64,
    media: CallMedia,
    /// The browser's socket, then each leg's RTP and RTCP.
    sockets: [Option<UdpSocket>; PER_CALL],
    /// Their addresses, let go after them (fields drop in order).
    _held: Held,
    /// The call's timer in the heap.
    deadline: Instant,
    next_publish: Instant,
    /// Which of its sockets are on the worker's busy list.
    busy: u8,
    /// On the shared port: the browser addresses that lead to the call,
    /// oldest replaced first, and its ICE username fragments.
    addrs: [Option<SocketAddr>; ADDRS],
    next_addr: usize,
    ufrags: Vec<Vec<u8>>,
}

impl Call {
    /// Sends one datagram from socket `idx` (the browser's: the call's own,
    /// else the worker's `shared`); a failed send loses that packet only,
    /// as on the wire.
    fn send(&self, shared: Option<&UdpSocket>, idx: usize, datagram: &[u8], to: SocketAddr) {
        let socket = self.sockets[idx].as_ref().or(shared.filter(|_| idx == 0));
        if let Some(socket) = socket
            && let Err(e) = socket.send_to(datagram, to)
        {
            debug!(call = self.id.0, %to, error = %e, "media send failed");
        }
    }

    /// Sends the DTLS flights and retransmissions the call has (not on the
    /// media path).
    fn transmit(&mut self, shared: Option<&UdpSocket>) {
        while let Some((to, datagram)) = self.media.poll_transmit() {
            self.send(shared, 0, &datagram, to);
        }
    }

    /// When the call next needs its timer.
    fn next_deadline(&self) -> Instant {
        self.media.poll_timeout().min(self.next_publish)
    }
}

/// A timer entry: when, which slot, which call in it.
type Timer = Reverse<(Instant, usize, u64)>;

struct Worker {
    /// The browser port every call of this worker shares, if configured.
    shared: Option<UdpSocket>,
    /// It has datagrams left after its budget.
    shared_busy: bool,
    /// On the shared port: browser address and ICE username fragment to
    /// the call's slot.
    by_addr: HashMap<SocketAddr, usize>,
    by_ufrag: HashMap<Vec<u8>, usize>,
    poll: Poll,
    rx: Receiver<Msg>,
    calls: Slab<Call>,
    ids: HashMap<MediaId, usize>,
    timers: BinaryHeap<Timer>,
    /// Sockets left with datagrams after their budget: (slot, socket,
    /// generation), read again on the next turn without sleeping.
    busy: Vec<(usize, usize, u64)>,
    /// The one buffer every datagram is read into and answered from.
    buf: Box<[u8]>,
    next_generation: u64,
    idle: Duration,
    figures: MediaFigures,
    ended: UnboundedSender<(MediaId, Ended)>,
}

impl Worker {
    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut again = Vec::new();
        loop {
            let timeout = if self.busy.is_empty() && !self.shared_busy {
                self.timers
                    .peek()
                    .map(|Reverse((at, ..))| at.saturating_duration_since(Instant::now()))
            } else {
                Some(Duration::ZERO)
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                error!(error = %e, "media worker cannot wait: its calls end");
                self.end_all(|| Ended::Io(io::Error::new(e.kind(), e.to_string())));
                return;
            }
            let now = Instant::now();
            // The signalling's messages first: what it sent before these
            // datagrams came (a call's browser side) applies to them.
            if !self.commands(now) {
                self.end_all(|| Ended::Stopped);
                return;
            }
            let mut shared = std::mem::take(&mut self.shared_busy);
            for event in events.iter() {
                let Token(token) = event.token();
                if token == WAKE.0 {
                    continue;
                }
                if token == SHARED.0 {
                    shared = true;
                    continue;
                }
                let slot = token / PER_CALL;
                if let Some(generation) = self.calls.get(slot).map(|c| c.generation) {
                    self.drain(now, slot, token % PER_CALL, generation);
                }
            }
            if shared {
                self.drain_shared(now);
            }
            std::mem::swap(&mut self.busy, &mut again);
            for (slot, idx, generation) in again.drain(..) {
                if let Some(call) = self.calls.get_mut(slot)
                    && call.generation == generation
                {
                    call.busy &= !(1 << idx);
                    self.drain(now, slot, idx, generation);
                }
            }
            self.expire(now);
        }
    }

    /// Reads socket `idx` of the call in `slot` until it is empty or its
    /// budget is spent.
    fn drain(&mut self, now: Instant, slot: usize, idx: usize, generation: u64) {
        for _ in 0..BUDGET {
            let Some(call) = self.calls.get_mut(slot) else {
                return;
            };
            let Some(socket) = &call.sockets[idx] else {
                return;
            };
            let (len, from) = match socket.recv_from(&mut self.buf[..=MAX_DATAGRAM]) {
                Ok(read) => read,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if transient(&e) => continue,
                Err(e) => {
                    self.remove(slot, Ended::Io(e));
                    return;
                }
            };
            if len > MAX_DATAGRAM {
                debug!(call = call.id.0, %from, "oversized datagram dropped");
                continue;
            }
            if idx == 0 {
                self.browser_datagram(now, slot, from, len);
                continue;
            }
            let (leg, rtcp) = ((idx - 1) / 2, (idx - 1) % 2 == 1);
            match call
                .media
                .from_pbx(now, leg, from, rtcp, &mut self.buf, len)
            {
                Ok(Forward::ToBrowser { to, len }) => {
                    call.send(self.shared.as_ref(), 0, &self.buf[..len], to);
                }
                Ok(_) => {}
                Err(why) => debug!(call = call.id.0, ?why, %from, "PBX datagram dropped"),
            }
        }
        if let Some(call) = self.calls.get_mut(slot)
            && call.busy & (1 << idx) == 0
        {
            call.busy |= 1 << idx;
            self.busy.push((slot, idx, generation));
        }
    }

    /// Reads the shared browser port until it is empty or its budget is
    /// spent, each datagram to the call its source address (or, from a new
    /// address, its ICE username) names.
    fn drain_shared(&mut self, now: Instant) {
        for _ in 0..SHARED_BUDGET {
            let Some(socket) = &self.shared else {
                return;
            };
            let (len, from) = match socket.recv_from(&mut self.buf[..=MAX_DATAGRAM]) {
                Ok(read) => read,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    // Not the calls' fault: the next datagram may be fine.
                    if !transient(&e) {
                        warn!(error = %e, "shared browser port: read failed");
                    }
                    continue;
                }
            };
            if len > MAX_DATAGRAM {
                debug!(%from, "oversized datagram dropped");
                continue;
            }
            let slot = match self.by_addr.get(&from) {
                Some(&slot) => slot,
                None => {
                    let named = ice::local_ufrag(&self.buf[..len])
                        .and_then(|ufrag| self.by_ufrag.get(ufrag));
                    let Some(&slot) = named else {
                        debug!(%from, "datagram for no call dropped (shared port)");
                        continue;
                    };
                    slot
                }
            };
            self.browser_datagram(now, slot, from, len);
            if let Some(call) = self.calls.get(slot)
                && call.media.is_verified(from)
                && self.by_addr.get(&from) != Some(&slot)
            {
                self.learn(slot, from);
            }
        }
        self.shared_busy = true;
    }

    /// The browser datagram of `len` bytes in the buffer, from `from`, for
    /// the call in `slot`.
    fn browser_datagram(&mut self, now: Instant, slot: usize, from: SocketAddr, len: usize) {
        let Some(call) = self.calls.get_mut(slot) else {
            return;
        };
        let shared = self.shared.as_ref();
        match call.media.from_browser(now, from, &mut self.buf, len) {
            Ok(Forward::ToPbx { leg, to, len, rtcp }) => {
                let idx = 1 + 2 * leg + usize::from(rtcp);
                call.send(shared, idx, &self.buf[..len], to);
            }
            Ok(Forward::ToBrowser { to, len }) => call.send(shared, 0, &self.buf[..len], to),
            Ok(Forward::Nothing) => {}
            Err(why) => debug!(call = call.id.0, ?why, %from, "browser datagram dropped"),
        }
        if let Some(e) = call.media.failure() {
            let e = e.clone();
            self.remove(slot, Ended::Dtls(e));
            return;
        }
        call.transmit(shared);
        self.rearm(slot);
    }

    /// Leads the shared port's datagrams from `from` to the call in `slot`
    /// (a check from there passed), forgetting its oldest address if it
    /// has too many.
    fn learn(&mut self, slot: usize, from: SocketAddr) {
        let Some(call) = self.calls.get_mut(slot) else {
            return;
        };
        if let Some(old) = call.addrs[call.next_addr].replace(from)
            && self.by_addr.get(&old) == Some(&slot)
        {
            self.by_addr.remove(&old);
        }
        call.next_addr = (call.next_addr + 1) % ADDRS;
        self.by_addr.insert(from, slot);
    }

    /// Moves the call's timer earlier when it needs it sooner (a DTLS
    /// flight); a later one is found when the current one fires.
    fn rearm(&mut self, slot: usize) {
        if let Some(call) = self.calls.get_mut(slot) {
            let next = call.next_deadline();
            if next < call.deadline {
                call.deadline = next;
                self.timers.push(Reverse((next, slot, call.generation)));
            }
        }
    }

    /// Runs the timers due at `now`.
    fn expire(&mut self, now: Instant) {
        while let Some(&Reverse((at, slot, generation))) = self.timers.peek() {
            if at > now {
                return;
            }
            self.timers.pop();
            let Some(call) = self.calls.get_mut(slot) else {
                continue;
            };
            if call.generation != generation || call.deadline != at {
                continue; // moved since
            }
            if now >= call.next_publish {
                call.next_publish = now + PUBLISH;
                if let Some(counters) = call.media.figures() {
                    self.figures.publish(call.id.0, counters, false);
                }
            }
            match call.media.handle_timeout(now) {
                Ok(()) => {}
                Err(Over::Timeout) => {
                    self.remove(slot, Ended::MediaTimeout);
                    continue;
                }
                Err(Over::Dtls(e)) => {
                    self.remove(slot, Ended::Dtls(e));
                    continue;
                }
            }
            call.transmit(self.shared.as_ref());
            call.deadline = call.next_deadline();
            self.timers
                .push(Reverse((call.deadline, slot, call.generation)));
        }
    }

    /// Carries out the signalling's messages; `false` once the engine is
    /// gone.
    fn commands(&mut self, now: Instant) -> bool {
        loop {
            match self.rx.try_recv() {
                Ok(Msg::Open(id, sockets)) => self.open(now, id, sockets),
                Ok(Msg::Apply(command)) => {
                    let Some(&slot) = self.ids.get(&command.id()) else {
                        continue;
                    };
                    if self.shared.is_some() {
                        self.name(slot, &command);
                    }
                    if let Some(call) = self.calls.get_mut(slot) {
                        call.media.apply(now, *command);
                        call.transmit(self.shared.as_ref());
                    }
                    self.rearm(slot);
                }
                Ok(Msg::Close(id)) => {
                    if let Some(&slot) = self.ids.get(&id) {
                        self.remove(slot, Ended::Stopped);
                    }
                }
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
    }

    /// On the shared port, a call is found by our ICE username fragment
    /// toward its browser: the first, and each restart's (the one before
    /// stays, in case the browser keeps it).
    fn name(&mut self, slot: usize, command: &Command) {
        let ufrag = match command {
            Command::Browser { session, .. } => session.ice().local_ufrag(),
            Command::IceRestart { ice, .. } => ice.local_ufrag(),
            _ => return,
        };
        let Some(call) = self.calls.get_mut(slot) else {
            return;
        };
        if call.ufrags.len() == UFRAGS {
            let old = call.ufrags.remove(0);
            if self.by_ufrag.get(&old) == Some(&slot) {
                self.by_ufrag.remove(&old);
            }
        }
        call.ufrags.push(ufrag.as_bytes().to_vec());
        self.by_ufrag.insert(ufrag.as_bytes().to_vec(), slot);
    }

    fn open(&mut self, now: Instant, id: MediaId, sockets: MediaSockets) {
        let entry = self.calls.vacant_entry();
        let slot = entry.key();
        // `held` goes after the sockets, also on the way out below.
        let (held, sockets) = sockets.into_parts();
        let mut all: [Option<UdpSocket>; PER_CALL] = Default::default();
        for (idx, socket) in sockets {
            let mut socket = UdpSocket::from_std(socket);
            if let Err(e) = self.poll.registry().register(
                &mut socket,
                Token(slot * PER_CALL + idx),
                Interest::READABLE,
            ) {
                let _ = self.ended.send((id, Ended::Io(e)));
                return;
            }
            all[idx] = Some(socket);
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        let media = CallMedia::new(now, self.idle);
        let next_publish = now + PUBLISH;
        let deadline = media.poll_timeout().min(next_publish);
        entry.insert(Call {
            id,
            generation,
            media,
            sockets: all,
            _held: held,
            deadline,
            next_publish,
            busy: 0,
            addrs: [None; ADDRS],
            next_addr: 0,
            ufrags: Vec::with_capacity(UFRAGS),
        });
        self.ids.insert(id, slot);
        self.timers.push(Reverse((deadline, slot, generation)));
    }

    /// Ends the call in `slot`: its sockets close, its last figures are
    /// published and its end reported.
    fn remove(&mut self, slot: usize, ended: Ended) {
        let Some(call) = self.calls.try_remove(slot) else {
            return;
        };
        self.ids.remove(&call.id);
        for addr in call.addrs.iter().flatten() {
            if self.by_addr.get(addr) == Some(&slot) {
                self.by_addr.remove(addr);
            }
        }
        for ufrag in &call.ufrags {
            if self.by_ufrag.get(ufrag) == Some(&slot) {
                self.by_ufrag.remove(ufrag);
            }
        }
        debug!(call = call.id.0, ?ended, "media ended");
        self.figures
            .publish(call.id.0, call.media.figures().unwrap_or_default(), true);
        let _ = self.ended.send((call.id, ended));
    }

    fn end_all(&mut self, why: impl Fn() -> Ended) {
        let slots: Vec<usize> = self.calls.iter().map(|(slot, _)| slot).collect();
        for slot in slots {
            self.remove(slot, why());
        }
    }
}

/// Binds worker `i`'s shared browser port: `base`'s port plus `i`.
fn bind_shared(poll: &Poll, base: SocketAddr, i: usize) -> io::Result<UdpSocket> {
    let port = u16::try_from(i)
        .ok()
        .and_then(|i| base.port().checked_add(i))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "browser port past 65535"))?;
    let addr = SocketAddr::new(base.ip(), port);
    let socket = std::net::UdpSocket::bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("media.browser_port {addr}: {e}")))?;
    socket.set_nonblocking(true)?;
    // Every call's browser packets queue here: the default buffer (about
    // 200 KiB) overflows with a few hundred calls' packets arriving at
    // once.
    let sock = socket2::SockRef::from(&socket);
    sock.set_recv_buffer_size(SHARED_BUFFER)?;
    sock.set_send_buffer_size(SHARED_BUFFER)?;
    // Linux reports twice what it grants (its bookkeeping counted in).
    let granted = sock.recv_buffer_size()? / 2;
    if granted < SHARED_BUFFER {
        warn!(
            %addr,
            granted,
            wanted = SHARED_BUFFER,
            "shared browser port: small receive buffer, packets may be lost under load \
             (raise the sysctl net.core.rmem_max)"
        );
    }
    let mut socket = UdpSocket::from_std(socket);
    poll.registry()
        .register(&mut socket, SHARED, Interest::READABLE)?;
    Ok(socket)
}

/// Errors a UDP read may report that say nothing about this socket
/// (an ICMP error for an earlier send, on some systems).
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset
    )
}
