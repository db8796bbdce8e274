//! A scripted browser: registers over a raw WebSocket with real digest
//! authentication (the core's `DigestClient`), then lets a test read and
//! answer requests by hand. Calls arrive in the SDK later; until then this
//! is how tests play the callee.

use std::time::Duration;

use sipline_core::Secret;
use sipline_core::auth::{AuthRound, Challenge, ChallengeKind, DigestClient, RequestInfo};
use sipline_core::rand::Rng;
use sipline_core::sip::{HeaderName, Message, MessageBuilder, Method, response_to};

use super::{Received, Ws, raw_ws, receive, send};

/// One browser with a registered WebSocket.
pub struct Browser {
    ws: Ws,
    /// Its user name.
    pub user: String,
    /// Its `.invalid` host (Via and Contact).
    pub host: String,
    rng: Rng,
    cseq: u32,
    /// The registrar's 2xx to its REGISTER, as the relay passed it on.
    pub registered: String,
}

impl Browser {
    /// Connects to `url` and registers `user` (realm sipline.test).
    pub async fn register(url: &str, user: &str, password: &str, seed: u8) -> Browser {
        let mut rng = Rng::from_seed([seed; 32]);
        let host = format!("{}.invalid", rng.token(8));
        let mut b = Browser {
            ws: raw_ws(url).await,
            user: user.to_owned(),
            host,
            rng,
            cseq: 0,
            registered: String::new(),
        };
        let mut digest = DigestClient::new(user.to_owned(), Secret::new(password));
        let mut round = AuthRound::default();
        let call_id = b.rng.token(12);
        for _ in 0..3 {
            b.cseq += 1;
            let mut m = MessageBuilder::request(Method::Register, "sip:sipline.test");
            m.header("Via", &b.via());
            m.header("Max-Forwards", "70");
            m.header("To", &format!("<sip:{user}@sipline.test>"));
            m.header(
                "From",
                &format!("<sip:{user}@sipline.test>;tag={}", b.rng.token(6)),
            );
            m.header("Call-ID", &call_id);
            m.header("CSeq", &format!("{} REGISTER", b.cseq));
            m.header("Contact", &format!("<{}>;expires=300", b.contact()));
            m.header("Expires", "300");
            let info = RequestInfo {
                method: "REGISTER",
                uri: "sip:sipline.test",
                body: b"",
            };
            for (name, value) in digest.credentials(&info, &mut b.rng) {
                m.header(name, &value);
            }
            send(
                &mut b.ws,
                &String::from_utf8(m.finish(None, b"")).expect("utf8"),
            )
            .await;
            let resp = b.next_response().await;
            let msg = Message::parse(resp.as_bytes()).expect("response parses");
            match msg.status() {
                Some(200) => {
                    b.registered = resp.clone();
                    return b;
                }
                Some(401) => {
                    let chs: Vec<Challenge> = msg
                        .header_lines(HeaderName::WwwAuthenticate)
                        .filter_map(|v| Challenge::parse(ChallengeKind::Www, v))
                        .collect();
                    assert!(
                        digest.on_challenges(&chs, &mut round),
                        "challenge not answerable: {resp}"
                    );
                }
                other => panic!("REGISTER for {user} got {other:?}: {resp}"),
            }
        }
        panic!("{user} could not register");
    }

    /// A fresh Via for a request from this browser.
    pub fn via(&mut self) -> String {
        format!(
            "SIP/2.0/WS {};branch=z9hG4bK{}",
            self.host,
            self.rng.token(10)
        )
    }

    /// The Contact URI this browser registers.
    pub fn contact(&self) -> String {
        format!("sip:{}@{};transport=ws", self.user, self.host)
    }

    async fn next_response(&mut self) -> String {
        loop {
            match receive(&mut self.ws, Duration::from_secs(5)).await {
                Received::Text(t) if t.starts_with("SIP/2.0 ") && !t.starts_with("SIP/2.0 1") => {
                    return t;
                }
                Received::Text(_) => continue,
                other => panic!("{}: no response: {other:?}", self.user),
            }
        }
    }

    /// The next request that arrives within `within`, if any (responses and
    /// keep-alives are skipped).
    pub async fn next_request(&mut self, within: Duration) -> Option<String> {
        loop {
            match receive(&mut self.ws, within).await {
                Received::Text(t) if !t.starts_with("SIP/2.0 ") && !t.trim().is_empty() => {
                    return Some(t);
                }
                Received::Text(_) => continue,
                _ => return None,
            }
        }
    }

    /// The next final response (1xx skipped).
    pub async fn final_response(&mut self) -> String {
        self.next_response().await
    }

    /// Answers `request` with `code`; a 2xx to an INVITE carries our Contact
    /// and a fake SDP answer (this relay test is about signalling).
    pub async fn answer(&mut self, request: &str, code: u16, reason: &str, to_tag: &str) {
        let req = Message::parse(request.as_bytes()).expect("request parses");
        let mut b = response_to(&req, code, reason, Some(to_tag));
        let invite = req.method() == Some(Method::Invite);
        let invite_ok = invite && (200..300).contains(&code);
        if invite && (101..300).contains(&code) {
            // Dialog-creating answers echo the Record-Route set and name our
            // Contact (RFC 3261 §12.1.1).
            for rr in req.header_lines(HeaderName::RecordRoute) {
                b.header("Record-Route", rr);
            }
            b.header("Contact", &format!("<{}>", self.contact()));
        }
        let body: &[u8] = if invite_ok {
            b"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n"
        } else {
            b""
        };
        let bytes = b.finish(invite_ok.then_some("application/sdp"), body);
        send(&mut self.ws, &String::from_utf8(bytes).expect("utf8")).await;
    }

    /// Hangs up the call that `invite` (received, answered with `to_tag`)
    /// set up: a BYE along its Record-Route set to its Contact (RFC 3261
    /// §12.1.1, UAS side).
    pub async fn hang_up(&mut self, invite: &str, to_tag: &str) {
        let inv = Message::parse(invite.as_bytes()).expect("INVITE parses");
        let target = inv
            .header(HeaderName::Contact)
            .and_then(sipline_core::sip::NameAddr::parse)
            .map(|c| c.uri_text.to_owned())
            .expect("caller Contact");
        let mut b = MessageBuilder::request(Method::Bye, &target);
        b.header("Via", &self.via());
        for rr in inv.header_values(HeaderName::RecordRoute) {
            b.header("Route", rr);
        }
        b.header("Max-Forwards", "70");
        b.header(
            "From",
            &format!("{};tag={to_tag}", inv.header(HeaderName::To).expect("To")),
        );
        b.header("To", inv.header(HeaderName::From).expect("From"));
        b.header("Call-ID", inv.call_id());
        b.header("CSeq", "1 BYE");
        send(
            &mut self.ws,
            &String::from_utf8(b.finish(None, b"")).expect("utf8"),
        )
        .await;
    }
}

impl Browser {
    /// Sends an INVITE (fake SDP) to `sip:<to>@<domain>`; returns it.
    pub async fn invite(&mut self, to: &str, domain: &str, call_id: &str) -> String {
        let mut b = MessageBuilder::request(Method::Invite, &format!("sip:{to}@{domain}"));
        b.header("Via", &self.via());
        b.header("Max-Forwards", "70");
        b.header(
            "From",
            &format!("<sip:{}@{domain}>;tag={}tag", self.user, self.user),
        );
        b.header("To", &format!("<sip:{to}@{domain}>"));
        b.header("Call-ID", call_id);
        b.header("CSeq", "1 INVITE");
        b.header("Contact", &format!("<{}>", self.contact()));
        let sdp = b"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n";
        let text = String::from_utf8(b.finish(Some("application/sdp"), sdp)).expect("utf8");
        send(&mut self.ws, &text).await;
        text
    }

    /// The next response, provisional ones included.
    pub async fn any_response(&mut self, within: Duration) -> Option<String> {
        loop {
            match receive(&mut self.ws, within).await {
                Received::Text(t) if t.starts_with("SIP/2.0 ") => return Some(t),
                Received::Text(_) => continue,
                _ => return None,
            }
        }
    }

    /// A request inside the dialog that `invite` (sent by us) and its 2xx
    /// `ok` set up, as the caller (RFC 3261 §12.1.2: the route set is the
    /// Record-Route of the 2xx, reversed; the target its Contact).
    pub async fn in_dialog(&mut self, method: Method, invite: &str, ok: &str) {
        let inv = Message::parse(invite.as_bytes()).expect("INVITE parses");
        let ok = Message::parse(ok.as_bytes()).expect("2xx parses");
        let target = ok
            .header(HeaderName::Contact)
            .and_then(sipline_core::sip::NameAddr::parse)
            .map(|c| c.uri_text.to_owned())
            .expect("callee Contact");
        let mut b = MessageBuilder::request(method, &target);
        b.header("Via", &self.via());
        let routes: Vec<&str> = ok.header_values(HeaderName::RecordRoute).collect();
        for r in routes.iter().rev() {
            b.header("Route", r);
        }
        b.header("Max-Forwards", "70");
        b.header("From", inv.header(HeaderName::From).expect("From"));
        b.header("To", ok.header(HeaderName::To).expect("To"));
        b.header("Call-ID", inv.call_id());
        b.header(
            "CSeq",
            if method == Method::Ack {
                "1 ACK"
            } else {
                "2 BYE"
            },
        );
        send(
            &mut self.ws,
            &String::from_utf8(b.finish(None, b"")).expect("utf8"),
        )
        .await;
    }
}
