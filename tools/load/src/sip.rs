//! Setting calls up for the load: the browser's side as a SIP-over-WebSocket
//! UAC (RFC 7118, one connection per call, as one browser tab), and the
//! PBX's side as a UDP UAS that answers every INVITE with plain RTP on a
//! socket of its own and hands that socket to the call.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::{SinkExt, StreamExt};
use sipline_core::Secret;
use sipline_core::auth::{AuthRound, Challenge, ChallengeKind, DigestClient, RequestInfo};
use sipline_core::rand::Rng;
use sipline_core::sip::{HeaderName, Message, MessageBuilder, Method, NameAddr, response_to};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Bytes, Message as Frame};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Why a call could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SipError {
    /// The WebSocket failed.
    #[error("WebSocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    /// The gateway refused the call.
    #[error("{0}")]
    Refused(String),
    /// The connection closed before the answer.
    #[error("the gateway closed the connection")]
    Closed,
    /// A socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// An established call, as its UAC knows it (RFC 3261 §12.1.2).
#[derive(Clone, Debug)]
pub struct Dialog {
    call_id: String,
    from: String,
    to: String,
    target: String,
    routes: Vec<String>,
    cseq: u32,
    /// The SDP answer.
    pub answer: String,
}

/// One browser tab's SIP connection.
pub struct Uac {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    host: String,
    next_branch: u64,
    /// Answers 401/407 challenges, when credentials were given.
    digest: Option<DigestClient>,
    rng: Rng,
    /// The close code the gateway sent, once it closed the WebSocket.
    close_code: Option<u16>,
}

fn token() -> String {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Uac {
    /// Opens the WebSocket (subprotocol `sip`); `credentials` (user,
    /// password) answer the gateway's digest challenges.
    pub async fn connect(url: &str, credentials: Option<(&str, &str)>) -> Result<Self, SipError> {
        let mut req = url.into_client_request()?;
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("sip"));
        let (ws, _) = tokio_tungstenite::connect_async(req).await?;
        let mut seed = [0u8; 32];
        let _ = getrandom::fill(&mut seed);
        Ok(Self {
            ws,
            host: format!("{}.invalid", token()),
            next_branch: 1,
            digest: credentials.map(|(u, p)| DigestClient::new(u.to_owned(), Secret::new(p))),
            rng: Rng::from_seed(seed),
            close_code: None,
        })
    }

    /// Sends the request `build(cseq, credentials)` makes and returns its
    /// final response; a 401/407 is answered once with credentials, at the
    /// next CSeq. Returns the response and the CSeq it answered.
    async fn authed(
        &mut self,
        method: &str,
        uri: &str,
        body: &[u8],
        mut cseq: u32,
        build: impl Fn(&mut Self, u32, &[(&'static str, String)]) -> Vec<u8>,
    ) -> Result<(Vec<u8>, u32), SipError> {
        let first = build(self, cseq, &[]);
        self.send(first).await?;
        let raw = self.final_response(&format!("{cseq} {method}")).await?;
        let challenges: Vec<Challenge> = match Message::parse(&raw) {
            Ok(m) if matches!(m.status(), Some(401 | 407)) => m
                .header_lines(HeaderName::WwwAuthenticate)
                .filter_map(|v| Challenge::parse(ChallengeKind::Www, v))
                .chain(
                    m.header_lines(HeaderName::ProxyAuthenticate)
                        .filter_map(|v| Challenge::parse(ChallengeKind::Proxy, v)),
                )
                .collect(),
            _ => return Ok((raw, cseq)),
        };
        let Some(digest) = self.digest.as_mut() else {
            return Ok((raw, cseq));
        };
        if !digest.on_challenges(&challenges, &mut AuthRound::default()) {
            return Ok((raw, cseq));
        }
        let req = RequestInfo { method, uri, body };
        let credentials = digest.credentials(&req, &mut self.rng);
        cseq += 1;
        let again = build(self, cseq, &credentials);
        self.send(again).await?;
        let raw = self.final_response(&format!("{cseq} {method}")).await?;
        Ok((raw, cseq))
    }

    fn via(&mut self) -> String {
        self.next_branch += 1;
        format!(
            "SIP/2.0/WSS {};branch=z9hG4bK{}{}",
            self.host,
            token(),
            self.next_branch
        )
    }

    async fn send(&mut self, text: Vec<u8>) -> Result<(), SipError> {
        let text = String::from_utf8(text).map_err(|_| SipError::Closed)?;
        self.ws.send(Frame::Text(text.into())).await?;
        Ok(())
    }

    /// The next SIP message; a request (but an ACK) is answered 200.
    async fn next_message(&mut self) -> Result<Bytes, SipError> {
        while let Some(frame) = self.ws.next().await {
            let bytes: Bytes = match frame? {
                Frame::Text(t) => Bytes::from(t.as_str().to_owned()),
                Frame::Binary(b) => b,
                Frame::Close(frame) => {
                    self.close_code = frame.map(|f| u16::from(f.code));
                    return Err(SipError::Closed);
                }
                _ => continue,
            };
            let Ok(msg) = Message::parse(&bytes) else {
                continue;
            };
            if msg.is_request() && msg.method() != Some(Method::Ack) {
                let ok = response_to(&msg, 200, "OK", None).finish(None, b"");
                self.send(ok).await?;
            }
            return Ok(bytes);
        }
        Err(SipError::Closed)
    }

    /// The final response to the request with this CSeq; requests the
    /// gateway sends meanwhile are answered 200.
    async fn final_response(&mut self, cseq: &str) -> Result<Vec<u8>, SipError> {
        loop {
            let bytes = self.next_message().await?;
            let Ok(msg) = Message::parse(&bytes) else {
                continue;
            };
            let this = format!("{} {}", msg.cseq().seq, msg.cseq().method);
            if !msg.is_request() && this == cseq && msg.status().is_some_and(|c| c >= 200) {
                return Ok(bytes.to_vec());
            }
        }
    }

    /// Registers `aor` with this connection's Contact for `expires`
    /// seconds (answering a digest challenge); returns the final status.
    pub async fn register(&mut self, aor: &str, expires: u32) -> Result<u16, SipError> {
        let call_id = token();
        let from = format!("<{aor}>;tag={}", token());
        let registrar = aor
            .split_once('@')
            .map_or(aor.to_owned(), |(_, domain)| format!("sip:{domain}"));
        let build = |uac: &mut Self, cseq: u32, credentials: &[(&'static str, String)]| {
            let mut b = MessageBuilder::request(Method::Register, &registrar);
            b.header("Via", &uac.via())
                .header("Max-Forwards", "70")
                .header("From", &from)
                .header("To", &format!("<{aor}>"))
                .header("Call-ID", &call_id)
                .header_parts("CSeq", &[&cseq.to_string(), " REGISTER"])
                .header("Contact", &format!("<sip:load@{};transport=ws>", uac.host))
                .header("Expires", &expires.to_string());
            for (name, value) in credentials {
                b.header(name, value);
            }
            b.finish(None, b"")
        };
        let (raw, _) = self.authed("REGISTER", &registrar, b"", 1, build).await?;
        Ok(Message::parse(&raw)
            .ok()
            .and_then(|m| m.status())
            .unwrap_or(0))
    }

    /// An RFC 5626 keep-alive (a double CRLF): it tells the gateway the
    /// browser is there while nothing else is said, as a browser's SIP
    /// stack does during a long call.
    pub async fn keep_alive(&mut self) -> Result<(), SipError> {
        self.send(b"\r\n\r\n".to_vec()).await
    }

    /// Whether the gateway left the WebSocket open: reads what it sent
    /// meanwhile (answering its requests) until nothing comes for
    /// `within`.
    pub async fn still_open(&mut self, within: std::time::Duration) -> bool {
        let read = async { while self.next_message().await.is_ok() {} };
        tokio::time::timeout(within, read).await.is_err()
    }

    /// The code of the gateway's close frame, once one came.
    pub fn close_code(&self) -> Option<u16> {
        self.close_code
    }

    /// The next request the gateway sends (answered 200), as text.
    pub async fn next_request(&mut self, within: std::time::Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let bytes = tokio::time::timeout_at(deadline, self.next_message())
                .await
                .ok()?
                .ok()?;
            if Message::parse(&bytes).is_ok_and(|m| m.is_request()) {
                return Some(String::from_utf8_lossy(&bytes).into_owned());
            }
        }
    }

    /// Calls `target` with `sdp`; returns the dialog once answered (and
    /// acknowledged).
    pub async fn call(&mut self, target: &str, from: &str, sdp: &str) -> Result<Dialog, SipError> {
        let call_id = token();
        let from = format!("<{from}>;tag={}", token());
        let build = |uac: &mut Self, cseq: u32, credentials: &[(&'static str, String)]| {
            let mut b = MessageBuilder::request(Method::Invite, target);
            b.header("Via", &uac.via())
                .header("Max-Forwards", "70")
                .header("From", &from)
                .header("To", &format!("<{target}>"))
                .header("Call-ID", &call_id)
                .header_parts("CSeq", &[&cseq.to_string(), " INVITE"])
                .header("Contact", &format!("<sip:load@{};transport=ws>", uac.host));
            for (name, value) in credentials {
                b.header(name, value);
            }
            b.finish(Some("application/sdp"), sdp.as_bytes())
        };
        let (raw, cseq) = self
            .authed("INVITE", target, sdp.as_bytes(), 1, build)
            .await?;
        let ok = Message::parse(&raw).map_err(|_| SipError::Closed)?;
        if ok.status() != Some(200) {
            return Err(SipError::Refused(format!(
                "{} {}",
                ok.status().unwrap_or(0),
                ok.reason()
            )));
        }
        let mut routes: Vec<String> = ok
            .header_values(HeaderName::RecordRoute)
            .map(str::to_owned)
            .collect();
        routes.reverse();
        let dialog = Dialog {
            call_id,
            from,
            to: ok.header(HeaderName::To).unwrap_or_default().to_owned(),
            target: ok
                .header_values(HeaderName::Contact)
                .next()
                .and_then(NameAddr::parse)
                .map_or_else(|| target.to_owned(), |na| na.uri_text.to_owned()),
            routes,
            cseq,
            answer: String::from_utf8_lossy(ok.body()).into_owned(),
        };
        let ack = self.in_dialog(Method::Ack, &dialog, dialog.cseq, &[]);
        self.send(ack).await?;
        Ok(dialog)
    }

    fn in_dialog(
        &mut self,
        method: Method,
        d: &Dialog,
        cseq: u32,
        credentials: &[(&'static str, String)],
    ) -> Vec<u8> {
        let mut b = MessageBuilder::request(method, &d.target);
        b.header("Via", &self.via()).header("Max-Forwards", "70");
        for r in &d.routes {
            b.header("Route", r);
        }
        b.header("From", &d.from)
            .header("To", &d.to)
            .header("Call-ID", &d.call_id)
            .header_parts("CSeq", &[&cseq.to_string(), " ", method.as_str()]);
        for (name, value) in credentials {
            b.header(name, value);
        }
        b.finish(None, b"")
    }

    /// Ends the call; returns the BYE's status.
    pub async fn hang_up(&mut self, d: &mut Dialog) -> Result<u16, SipError> {
        let dialog = d.clone();
        let build = |uac: &mut Self, cseq: u32, credentials: &[(&'static str, String)]| {
            uac.in_dialog(Method::Bye, &dialog, cseq, credentials)
        };
        let (raw, cseq) = self
            .authed("BYE", &dialog.target, b"", d.cseq + 1, build)
            .await?;
        d.cseq = cseq;
        Ok(Message::parse(&raw)
            .ok()
            .and_then(|m| m.status())
            .unwrap_or(0))
    }
}

/// The PBX's end of one call: its RTP socket and where the gateway
/// receives RTP for the call.
#[derive(Debug)]
pub struct PbxLeg {
    /// The PBX's RTP socket.
    pub socket: UdpSocket,
    /// The gateway's RTP address, from its offer.
    pub gateway: SocketAddr,
}

type Waiting = Arc<Mutex<HashMap<String, oneshot::Sender<PbxLeg>>>>;

/// The PBX side: a UDP UAS answering every INVITE with plain RTP.
#[derive(Clone, Debug)]
pub struct PbxUas {
    addr: SocketAddr,
    /// Calls waiting for their PBX leg, by the user part of the target.
    waiting: Waiting,
    /// BYEs received (the gateway ending calls).
    byes: Arc<std::sync::atomic::AtomicUsize>,
}

/// The gateway's RTP address in a plain SDP offer.
fn offer_address(sdp: &str) -> Option<SocketAddr> {
    let ip = sdp
        .lines()
        .find_map(|l| l.trim_end().strip_prefix("c=IN IP4 "))?;
    let port = sdp
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))?
        .split(' ')
        .next()?;
    format!("{ip}:{port}").parse().ok()
}

impl PbxUas {
    /// Binds the UAS and starts answering.
    pub async fn start(addr: SocketAddr) -> Result<Self, SipError> {
        let socket = UdpSocket::bind(addr).await?;
        let uas = Self {
            addr: socket.local_addr()?,
            waiting: Arc::default(),
            byes: Arc::default(),
        };
        tokio::spawn(serve(socket, uas.clone()));
        Ok(uas)
    }

    /// How many BYEs the PBX side has received.
    pub fn byes(&self) -> usize {
        self.byes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Its SIP address (the gateway's PBX).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The PBX leg of the call to `sip:<user>@…`, once its INVITE arrives.
    pub fn expect(&self, user: &str) -> oneshot::Receiver<PbxLeg> {
        let (tx, rx) = oneshot::channel();
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(user.to_owned(), tx);
        rx
    }
}

async fn serve(socket: UdpSocket, uas: PbxUas) {
    let mut buf = vec![0u8; 65_536];
    // The 200 each INVITE got, to answer its retransmissions alike.
    let mut answered: HashMap<String, Vec<u8>> = HashMap::new();
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let Ok(msg) = Message::parse(&buf[..n]) else {
            continue;
        };
        let reply = match msg.method() {
            Some(Method::Invite) if answered.contains_key(msg.call_id()) => {
                answered.get(msg.call_id()).cloned()
            }
            Some(Method::Invite) => answer_invite(&msg, &uas.waiting, &socket).await,
            Some(Method::Ack) | None => None,
            Some(Method::Bye) => {
                uas.byes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Some(response_to(&msg, 200, "OK", Some("pbx")).finish(None, b""))
            }
            Some(_) => Some(response_to(&msg, 200, "OK", Some("pbx")).finish(None, b"")),
        };
        if let Some(reply) = reply {
            if msg.method() == Some(Method::Invite) {
                answered.insert(msg.call_id().to_owned(), reply.clone());
            }
            let _ = socket.send_to(&reply, from).await;
        }
    }
}

async fn answer_invite(msg: &Message<'_>, waiting: &Waiting, sip: &UdpSocket) -> Option<Vec<u8>> {
    let user = msg
        .request_uri()
        .and_then(sipline_core::sip::Uri::parse)
        .and_then(|u| u.user)
        .unwrap_or_default()
        .to_owned();
    let waiter = waiting
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&user);
    let gateway = offer_address(&String::from_utf8_lossy(msg.body()));
    let (Some(waiter), Some(gateway)) = (waiter, gateway) else {
        return Some(response_to(msg, 404, "No Such Load Call", Some("pbx")).finish(None, b""));
    };
    let ip = sip.local_addr().ok()?.ip();
    let rtp = UdpSocket::bind((ip, 0)).await.ok()?;
    let port = rtp.local_addr().ok()?.port();
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=load\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    );
    let mut b = response_to(msg, 200, "OK", Some("pbx"));
    b.header(
        "Contact",
        &format!("<sip:{user}@{}>", sip.local_addr().ok()?),
    );
    let _ = waiter.send(PbxLeg {
        socket: rtp,
        gateway,
    });
    Some(b.finish(Some("application/sdp"), sdp.as_bytes()))
}
