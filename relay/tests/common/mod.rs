//! The real relay binary, started and stopped by the tests, and a raw
//! WebSocket client for what the user agent would never send.

#![allow(dead_code)] // each test file uses its own part of this module

pub mod browser;
pub mod calls;
pub mod flood;
pub mod native;
pub mod recordings;

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::{Child, Command};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use sipline_load::run::LoadConfig;
use sipline_test_harness::{free_port, relay};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Bytes, Message as Frame};

/// `sipline-load` settings: `calls` calls through the relay at `ws` with
/// `seconds` of media, 50 packets of 160 bytes a second each way, the PBX
/// side (in `pbx.test`) played by the load generator.
pub fn load(ws: String, calls: usize, seconds: u64) -> LoadConfig {
    LoadConfig {
        ws,
        domain: "pbx.test".into(),
        echo_user: String::new(),
        credentials: None,
        calls,
        rate: 50,
        payload: 160,
        duration: Duration::from_secs(seconds),
        setup_parallel: 4,
        local_ip: std::net::IpAddr::from([127, 0, 0, 1]),
        gateway_pid: None,
        baseline: false,
        keep_alive: Duration::from_secs(20),
    }
}

/// The same, calling the embedded PBX's echo in `sipline.local` as `user`
/// with `password`.
pub fn echo_load(ws: String, calls: usize, seconds: u64, user: &str, password: &str) -> LoadConfig {
    LoadConfig {
        domain: "sipline.local".into(),
        echo_user: "echo".into(),
        credentials: Some((user.into(), password.into())),
        ..load(ws, calls, seconds)
    }
}

/// A running `sipline-relay` process; killed when dropped.
pub struct RelayProcess {
    child: Child,
    /// Its browser side's address: 127.0.0.1, or ::1.
    host: IpAddr,
    /// Browser side: `ws://<host>:<http_port>/sip`.
    pub http_port: u16,
    /// PBX side UDP port.
    pub sip_port: u16,
    /// The flags and users it was started with, for [`RelayProcess::restart`].
    args: Vec<String>,
    users: Option<String>,
}

impl RelayProcess {
    /// Starts the relay in front of `pbx` with extra flags, and waits until
    /// it accepts connections.
    pub fn start(pbx: SocketAddr, extra: &[&str]) -> RelayProcess {
        let pbx = pbx.to_string();
        let mut args = vec!["--pbx", pbx.as_str()];
        args.extend_from_slice(extra);
        Self::spawn(&args, None)
    }

    /// Starts the relay with exactly `args` (its PBXs among them, e.g.
    /// `--pbx-uri`), and waits until it accepts connections.
    pub fn start_with(args: &[&str]) -> RelayProcess {
        Self::spawn(args, None)
    }

    /// Starts the relay with its embedded PBX and `users` (NAME:PASSWORD,
    /// comma-separated, passed through the environment as in production).
    pub fn start_embedded(extra: &[&str], users: &str) -> RelayProcess {
        let mut args = vec!["--embedded-pbx"];
        args.extend_from_slice(extra);
        Self::spawn(&args, Some(users))
    }

    /// Starts the relay in front of `pbx` with every side on `::1`: its
    /// WebSocket, the browsers' media, and its SIP toward the PBX.
    pub fn start_on_ipv6(pbx: SocketAddr, extra: &[&str]) -> RelayProcess {
        let pbx = pbx.to_string();
        let mut args = vec![
            "--pbx",
            pbx.as_str(),
            "--sip-listen",
            "[::1]:0",
            "--media-listen",
            "::1",
        ];
        args.extend_from_slice(extra);
        Self::spawn_on(IpAddr::from(std::net::Ipv6Addr::LOCALHOST), &args, None)
    }

    fn spawn(args: &[&str], users: Option<&str>) -> RelayProcess {
        Self::spawn_on(IpAddr::from([127, 0, 0, 1]), args, users)
    }

    fn spawn_on(host: IpAddr, args: &[&str], users: Option<&str>) -> RelayProcess {
        let http_port = free_port().expect("free port");
        let sip_port = free_port().expect("free port");
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        args.extend([
            "--http-listen".to_owned(),
            SocketAddr::new(host, http_port).to_string(),
        ]);
        let users = users.map(str::to_owned);
        let child = Self::launch(http_port, sip_port, &args, users.as_deref());
        let relay = RelayProcess {
            child,
            host,
            http_port,
            sip_port,
            args,
            users,
        };
        relay.wait_listening();
        relay
    }

    /// Kills the relay (every WebSocket drops, as in a crash) and starts it
    /// again on the same ports.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Self::launch(
            self.http_port,
            self.sip_port,
            &self.args,
            self.users.as_deref(),
        );
        self.wait_listening();
    }

    fn launch(http_port: u16, sip_port: u16, args: &[String], users: Option<&str>) -> Child {
        let binary = std::path::Path::new(env!("CARGO_BIN_EXE_sipline-relay"));
        relay::launch(binary, http_port, sip_port, args, users).expect("relay binary starts")
    }

    fn wait_listening(&self) {
        let addr = SocketAddr::new(self.host, self.http_port);
        assert!(relay::listening_at(addr), "relay did not listen on {addr}");
    }

    /// The WebSocket URL browsers use.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/sip", SocketAddr::new(self.host, self.http_port))
    }

    /// Kills the relay for good (SIGKILL, as a crash or a lost host): every
    /// WebSocket drops and no BYE goes anywhere.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM, as an init system stopping the service would.
    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running (it must never crash).
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `GET /metrics`, as text.
    pub fn metrics(&self) -> String {
        http_at(
            SocketAddr::new(self.host, self.http_port),
            "GET",
            "/metrics",
            "",
            None,
        )
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 GET, enough for /healthz and /metrics.
pub fn http_get(port: u16, path: &str) -> String {
    http(port, "GET", path, "", None)
}

/// A minimal HTTP/1.1 request with `headers` (each line ending in CRLF)
/// and, if given, a JSON body; the whole answer, status line first (a
/// binary body read lossily).
pub fn http(port: u16, method: &str, path: &str, headers: &str, json: Option<&str>) -> String {
    http_at(
        SocketAddr::from(([127, 0, 0, 1], port)),
        method,
        path,
        headers,
        json,
    )
}

/// [`http`] to `addr`.
pub fn http_at(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    json: Option<&str>,
) -> String {
    exchange(
        TcpStream::connect(addr).expect("connect"),
        addr,
        method,
        path,
        headers,
        json,
    )
}

/// A GET of `path` at `addr` from the local address `source` (127.0.0.2,
/// …: a host other than a trusted balancer's 127.0.0.1).
pub fn http_get_from(source: IpAddr, addr: SocketAddr, path: &str) -> String {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).expect("socket");
    socket
        .bind(&SocketAddr::new(source, 0).into())
        .expect("bind the source address");
    socket.connect(&addr.into()).expect("connect");
    exchange(TcpStream::from(socket), addr, "GET", path, "", None)
}

/// One request on `s` (to `addr`), and the whole answer.
fn exchange(
    mut s: TcpStream,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    json: Option<&str>,
) -> String {
    use std::io::{Read, Write};
    let body = json.map_or(String::new(), |j| {
        format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{j}",
            j.len()
        )
    });
    let body = if body.is_empty() { "\r\n".into() } else { body };
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}{body}"
    )
    .expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read");
    String::from_utf8_lossy(&out).into_owned()
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A raw WebSocket client speaking subprotocol `sip`.
pub async fn raw_ws(url: &str) -> Ws {
    try_raw_ws(url).await.expect("handshake")
}

/// The same, returning the refusal (e.g. HTTP 503) instead of panicking.
pub async fn try_raw_ws(url: &str) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut req = url.into_client_request()?;
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("sip"));
    Ok(tokio_tungstenite::connect_async(req).await?.0)
}
/// Sends one text frame.
pub async fn send(ws: &mut Ws, text: &str) {
    ws.send(Frame::text(text.to_owned())).await.expect("send");
}

/// Sends one binary frame.
pub async fn send_binary(ws: &mut Ws, bytes: Vec<u8>) {
    ws.send(Frame::Binary(Bytes::from(bytes)))
        .await
        .expect("send");
}

/// What the server sent next: a SIP message as text, or how it closed.
#[derive(Debug)]
pub enum Received {
    Text(String),
    Closed(Option<CloseFrame>),
    Nothing,
}

pub async fn receive(ws: &mut Ws, within: Duration) -> Received {
    match tokio::time::timeout(within, ws.next()).await {
        Ok(Some(Ok(Frame::Text(t)))) => Received::Text(t.to_string()),
        Ok(Some(Ok(Frame::Binary(b)))) => Received::Text(String::from_utf8_lossy(&b).into_owned()),
        Ok(Some(Ok(Frame::Close(c)))) => Received::Closed(c),
        Ok(Some(Ok(_))) => Box::pin(receive(ws, within)).await,
        Ok(Some(Err(_))) | Ok(None) => Received::Closed(None),
        Err(_) => Received::Nothing,
    }
}

/// The same, past the `100 Trying` the relay answers every INVITE with.
pub async fn receive_past_trying(ws: &mut Ws, within: Duration) -> Received {
    loop {
        match receive(ws, within).await {
            Received::Text(t) if t.starts_with("SIP/2.0 100 ") => continue,
            other => return other,
        }
    }
}

/// A reader of the relay's admin event stream (server-sent events), with
/// plain HTTP so that the test depends on nothing but the wire format.
pub struct AdminStream {
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::net::TcpStream>>,
    /// The HTTP status line.
    pub status: String,
}

impl AdminStream {
    /// Opens `GET /admin/events` with `token` (or none).
    pub async fn open(port: u16, token: Option<&str>) -> AdminStream {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "GET /admin/events HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Accept: text/event-stream\r\n\r\n"
        );
        tcp.write_all(req.as_bytes()).await.expect("write");
        let mut lines = tokio::io::BufReader::new(tcp).lines();
        let status = lines.next_line().await.ok().flatten().unwrap_or_default();
        AdminStream { lines, status }
    }

    /// The next event as (name, JSON data), waiting up to `within`.
    pub async fn next(&mut self, within: Duration) -> Option<(String, String)> {
        let mut name = None;
        tokio::time::timeout(within, async {
            while let Ok(Some(line)) = self.lines.next_line().await {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_owned());
                } else if let (Some(data), Some(n)) = (line.strip_prefix("data: "), name.take()) {
                    return Some((n, data.to_owned()));
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
    }

    /// Events until one named `last` (inclusive), or `None` on timeout.
    pub async fn until(&mut self, last: &str, within: Duration) -> Option<Vec<(String, String)>> {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + within;
        while let Some(ev) = self
            .next(deadline.saturating_duration_since(tokio::time::Instant::now()))
            .await
        {
            let done = ev.0 == last;
            seen.push(ev);
            if done {
                return Some(seen);
            }
        }
        None
    }
}
