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
use tracing::{debug, error};

use super::media::{Ended, Held, MediaFigures, MediaSockets};
use crate::ids::MediaId;
use crate::media::call::{CallMedia, Over};
use crate::media::calls::Command;
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
/// A call's sockets: the browser's, then each leg's RTP and RTCP.
const PER_CALL: usize = 1 + 2 * MAX_LEGS;
/// The token of a worker's waker (commands are waiting).
const WAKE: Token = Token(usize::MAX);

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
    /// `figures`. Each call's end comes out of the returned channel once,
    /// with its id.
    pub fn start(
        workers: usize,
        idle: Duration,
        figures: MediaFigures,
    ) -> io::Result<(Engine, UnboundedReceiver<(MediaId, Ended)>)> {
        let (ended, ends) = unbounded_channel();
        let mut engine = Engine {
            workers: Vec::with_capacity(workers.max(1)),
        };
        for i in 0..workers.max(1) {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
            let (tx, rx) = channel();
            let worker = Worker {
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
        let worker = &self.workers[(id.0 % self.workers.len() as u64) as usize];
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
}

impl Call {
    /// Sends one datagram from socket `idx`; a failed send loses that
    /// packet only, as on the wire.
    fn send(&self, idx: usize, datagram: &[u8], to: SocketAddr) {
        if let Some(socket) = &self.sockets[idx]
            && let Err(e) = socket.send_to(datagram, to)
        {
            debug!(call = self.id.0, %to, error = %e, "media send failed");
        }
    }

    /// Sends the DTLS flights and retransmissions the call has (not on the
    /// media path).
    fn transmit(&mut self) {
        while let Some((to, datagram)) = self.media.poll_transmit() {
            self.send(0, &datagram, to);
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
            let timeout = if self.busy.is_empty() {
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
            for event in events.iter() {
                let Token(token) = event.token();
                if token == WAKE.0 {
                    continue;
                }
                let slot = token / PER_CALL;
                if let Some(generation) = self.calls.get(slot).map(|c| c.generation) {
                    self.drain(now, slot, token % PER_CALL, generation);
                }
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
            if !self.commands(now) {
                self.end_all(|| Ended::Stopped);
                return;
            }
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
                match call.media.from_browser(now, from, &mut self.buf, len) {
                    Ok(Forward::ToPbx { leg, to, len, rtcp }) => {
                        call.send(1 + 2 * leg + usize::from(rtcp), &self.buf[..len], to);
                    }
                    Ok(Forward::ToBrowser { to, len }) => call.send(0, &self.buf[..len], to),
                    Ok(Forward::Nothing) => {}
                    Err(why) => debug!(call = call.id.0, ?why, %from, "browser datagram dropped"),
                }
                if let Some(e) = call.media.failure() {
                    let e = e.clone();
                    self.remove(slot, Ended::Dtls(e));
                    return;
                }
                call.transmit();
                self.rearm(slot);
            } else {
                let (leg, rtcp) = ((idx - 1) / 2, (idx - 1) % 2 == 1);
                match call
                    .media
                    .from_pbx(now, leg, from, rtcp, &mut self.buf, len)
                {
                    Ok(Forward::ToBrowser { to, len }) => call.send(0, &self.buf[..len], to),
                    Ok(_) => {}
                    Err(why) => debug!(call = call.id.0, ?why, %from, "PBX datagram dropped"),
                }
            }
        }
        if let Some(call) = self.calls.get_mut(slot)
            && call.busy & (1 << idx) == 0
        {
            call.busy |= 1 << idx;
            self.busy.push((slot, idx, generation));
        }
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
            call.transmit();
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
                    if let Some(call) = self.calls.get_mut(slot) {
                        call.media.apply(now, *command);
                        call.transmit();
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

/// Errors a UDP read may report that say nothing about this socket
/// (an ICMP error for an earlier send, on some systems).
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset
    )
}
