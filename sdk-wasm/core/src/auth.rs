//! HTTP digest authentication for SIP: RFC 2617 and RFC 7616 as updated for
//! SIP by RFC 8760 (MD5, SHA-256, SHA-512/256; `-sess` variants; `qop=auth`
//! and `auth-int`).
//!
//! The module keeps per-realm state (the last challenge and its nonce count)
//! so that requests after the first can carry credentials at once, and so
//! that a `stale=true` challenge is answered without failing the request.

use crate::prelude::*;
use alloc::borrow::Cow;

use md5::Md5;
use sha2::{Sha256, Sha512_256};

use crate::rand::Rng;
use crate::sip::{AuthParams, push_hex_byte};

/// The digest algorithms of RFC 8760.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// MD5 (RFC 2617); the default when a challenge names none.
    Md5,
    /// SHA-256 (RFC 7616, RFC 8760).
    Sha256,
    /// SHA-512/256 (RFC 7616, RFC 8760).
    Sha512_256,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha512_256 => "SHA-512-256",
        }
    }

    /// Hex digest of the concatenation of `parts`.
    fn hex(self, parts: &[&[u8]]) -> String {
        fn run<D: sha2::Digest>(parts: &[&[u8]]) -> String {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            let out = d.finalize();
            let mut s = String::with_capacity(out.len() * 2);
            for b in out.iter() {
                push_hex_byte(&mut s, *b);
            }
            s
        }
        match self {
            Algorithm::Md5 => run::<Md5>(parts),
            Algorithm::Sha256 => run::<Sha256>(parts),
            Algorithm::Sha512_256 => run::<Sha512_256>(parts),
        }
    }
}

/// Which header a challenge arrived in, and so which header answers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChallengeKind {
    /// `401` + `WWW-Authenticate` → `Authorization`.
    Www,
    /// `407` + `Proxy-Authenticate` → `Proxy-Authorization`.
    Proxy,
}

impl ChallengeKind {
    /// The header that carries the answer.
    pub fn credentials_header(self) -> &'static str {
        match self {
            ChallengeKind::Www => "Authorization",
            ChallengeKind::Proxy => "Proxy-Authorization",
        }
    }
}

/// Quality of protection chosen for a challenge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Qop {
    /// RFC 2069 compatibility: no qop.
    None,
    Auth,
    AuthInt,
}

/// A digest challenge the client can answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// Header it came in.
    pub kind: ChallengeKind,
    /// Protection realm.
    pub realm: String,
    /// Server nonce.
    pub nonce: String,
    /// Opaque value to echo.
    pub opaque: Option<String>,
    /// Hash algorithm.
    pub algorithm: Algorithm,
    /// `-sess` variant of the algorithm.
    pub session: bool,
    /// The server says the previous nonce merely expired (RFC 2617 §3.2.1).
    pub stale: bool,
    qop: Qop,
}

impl Challenge {
    /// Parses one challenge header value; `None` for non-Digest schemes,
    /// algorithms this stack does not implement, or missing realm/nonce.
    pub fn parse(kind: ChallengeKind, value: &str) -> Option<Challenge> {
        let p = AuthParams::parse(value)?;
        if !p.scheme.eq_ignore_ascii_case("Digest") {
            return None;
        }
        let alg = p.get("algorithm").unwrap_or(Cow::Borrowed("MD5"));
        // Compare bytes: the value is the network's, and may hold any UTF-8.
        let session =
            alg.len() >= 5 && alg.as_bytes()[alg.len() - 5..].eq_ignore_ascii_case(b"-sess");
        let base = if session {
            alg.get(..alg.len() - 5)?
        } else {
            &*alg
        };
        let algorithm = if base.eq_ignore_ascii_case("MD5") {
            Algorithm::Md5
        } else if base.eq_ignore_ascii_case("SHA-256") {
            Algorithm::Sha256
        } else if base.eq_ignore_ascii_case("SHA-512-256") {
            Algorithm::Sha512_256
        } else {
            return None;
        };
        let qop = match p.get("qop") {
            // -sess needs a cnonce, which RFC 2617 forbids without qop.
            None if session => return None,
            None => Qop::None,
            Some(list) => {
                let offered =
                    |name: &str| list.split(',').any(|q| q.trim().eq_ignore_ascii_case(name));
                if offered("auth") {
                    Qop::Auth
                } else if offered("auth-int") {
                    Qop::AuthInt
                } else {
                    return None;
                }
            }
        };
        Some(Challenge {
            kind,
            realm: p.get("realm")?.into_owned(),
            nonce: p.get("nonce")?.into_owned(),
            opaque: p.get("opaque").map(Cow::into_owned),
            algorithm,
            session,
            stale: p
                .get("stale")
                .is_some_and(|s| s.eq_ignore_ascii_case("true")),
            qop,
        })
    }

    /// Orders challenges for choice: RFC 7616 §3.7 lets the client pick the
    /// strongest it supports when a server offers several.
    fn strength(&self) -> u8 {
        match self.algorithm {
            Algorithm::Md5 => 0,
            Algorithm::Sha256 => 1,
            Algorithm::Sha512_256 => 2,
        }
    }
}

/// Picks the challenge to answer among those of one response: the strongest
/// supported algorithm, the first listed among equals.
pub fn choose<'c>(challenges: impl IntoIterator<Item = &'c Challenge>) -> Option<&'c Challenge> {
    let mut best: Option<&Challenge> = None;
    for c in challenges {
        if best.is_none_or(|b| c.strength() > b.strength()) {
            best = Some(c);
        }
    }
    best
}

/// The digest challenges of a 401 or 407.
pub(crate) fn challenges(msg: &crate::sip::Message<'_>) -> Vec<Challenge> {
    use crate::sip::HeaderName;
    msg.header_lines(HeaderName::WwwAuthenticate)
        .filter_map(|v| Challenge::parse(ChallengeKind::Www, v))
        .chain(
            msg.header_lines(HeaderName::ProxyAuthenticate)
                .filter_map(|v| Challenge::parse(ChallengeKind::Proxy, v)),
        )
        .collect()
}

/// What a digest response is computed over.
#[derive(Clone, Copy, Debug)]
pub struct RequestInfo<'a> {
    /// The request's method (any, when verifying).
    pub method: &'a str,
    /// The Request-URI (also the `uri` directive).
    pub uri: &'a str,
    /// The body, for `auth-int`.
    pub body: &'a [u8],
}

/// Computes the digest `response` directive (RFC 7616 §3.4.1).
#[allow(clippy::too_many_arguments)]
fn response_hash(
    c: &Challenge,
    username: &str,
    password: &str,
    req: &RequestInfo<'_>,
    cnonce: &str,
    nc: &str,
) -> String {
    let h = c.algorithm;
    let mut ha1 = h.hex(&[
        username.as_bytes(),
        b":",
        c.realm.as_bytes(),
        b":",
        password.as_bytes(),
    ]);
    if c.session {
        ha1 = h.hex(&[
            ha1.as_bytes(),
            b":",
            c.nonce.as_bytes(),
            b":",
            cnonce.as_bytes(),
        ]);
    }
    let ha2 = match c.qop {
        Qop::AuthInt => {
            let body = h.hex(&[req.body]);
            h.hex(&[
                req.method.as_bytes(),
                b":",
                req.uri.as_bytes(),
                b":",
                body.as_bytes(),
            ])
        }
        _ => h.hex(&[req.method.as_bytes(), b":", req.uri.as_bytes()]),
    };
    match c.qop {
        Qop::None => h.hex(&[
            ha1.as_bytes(),
            b":",
            c.nonce.as_bytes(),
            b":",
            ha2.as_bytes(),
        ]),
        Qop::Auth | Qop::AuthInt => {
            let qop: &[u8] = if c.qop == Qop::Auth {
                b"auth"
            } else {
                b"auth-int"
            };
            h.hex(&[
                ha1.as_bytes(),
                b":",
                c.nonce.as_bytes(),
                b":",
                nc.as_bytes(),
                b":",
                cnonce.as_bytes(),
                b":",
                qop,
                b":",
                ha2.as_bytes(),
            ])
        }
    }
}

/// One realm's answerable challenge and its nonce count.
#[derive(Clone, Debug)]
struct Session {
    challenge: Challenge,
    nc: u32,
    /// For `-sess` algorithms: the cnonce of the first request under this
    /// nonce, which H(A1) is computed with (RFC 2617 §3.2.2.2).
    first_cnonce: Option<String>,
}

/// What one request has been through: the challenges answered for it, so
/// that a refusal of our answer ends the exchange instead of looping.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthRound {
    answered: Vec<(ChallengeKind, String)>,
    stale_retries: u8,
}

/// Digest credentials and the challenges they answer, kept across requests.
#[derive(Clone, Debug)]
pub struct DigestClient {
    username: String,
    password: crate::secret::Secret,
    sessions: Vec<Session>,
}

impl DigestClient {
    /// A client for one set of credentials.
    pub fn new(username: String, password: crate::secret::Secret) -> Self {
        Self {
            username,
            password,
            sessions: Vec::new(),
        }
    }

    fn position(&self, kind: ChallengeKind, realm: &str) -> Option<usize> {
        self.sessions
            .iter()
            .position(|s| s.challenge.kind == kind && s.challenge.realm == realm)
    }

    /// Takes the challenges of a 401/407 for a request that went through
    /// `round`. Returns whether to send the request again with credentials.
    ///
    /// Each realm (per header kind: a proxy's 407 and a registrar's 401 are
    /// answered together, RFC 3261 §22.3) is answered once per request. A
    /// second challenge for a realm already answered means our credentials
    /// were refused, unless the server says the nonce was merely `stale`,
    /// which is honoured once, and only with a new nonce.
    pub fn on_challenges(&mut self, challenges: &[Challenge], round: &mut AuthRound) -> bool {
        let Some(chosen) = choose(challenges) else {
            return false;
        };
        let key = (chosen.kind, chosen.realm.clone());
        let known = self.position(chosen.kind, &chosen.realm);
        let same_nonce = known.is_some_and(|i| self.sessions[i].challenge.nonce == chosen.nonce);
        if round.answered.contains(&key) {
            let stale_ok = chosen.stale && !same_nonce && round.stale_retries == 0;
            if !stale_ok {
                if let Some(i) = known {
                    self.sessions.remove(i);
                }
                return false;
            }
            round.stale_retries += 1;
        } else {
            round.answered.push(key);
        }
        let session = Session {
            challenge: chosen.clone(),
            nc: 0,
            first_cnonce: None,
        };
        match known {
            Some(i) => self.sessions[i] = session,
            None => self.sessions.push(session),
        }
        true
    }

    /// Forgets every cached challenge (after a refusal).
    pub fn forget(&mut self) {
        self.sessions.clear();
    }

    /// The credential headers for a request: one per known realm, each with
    /// its nonce count advanced. Returns `(header name, value)` pairs.
    pub fn credentials(
        &mut self,
        req: &RequestInfo<'_>,
        rng: &mut Rng,
    ) -> Vec<(&'static str, String)> {
        let mut out = Vec::with_capacity(self.sessions.len());
        for s in &mut self.sessions {
            s.nc = s.nc.wrapping_add(1);
            let c = &s.challenge;
            let cnonce = match &s.first_cnonce {
                Some(first) if c.session => first.clone(),
                _ => rng.token(16),
            };
            if c.session && s.first_cnonce.is_none() {
                s.first_cnonce = Some(cnonce.clone());
            }
            let nc = nonce_count(s.nc);
            let response =
                response_hash(c, &self.username, self.password.expose(), req, &cnonce, &nc);
            let mut v = String::with_capacity(256);
            v.push_str("Digest username=\"");
            push_escaped(&mut v, &self.username);
            v.push_str("\", realm=\"");
            push_escaped(&mut v, &c.realm);
            v.push_str("\", nonce=\"");
            push_escaped(&mut v, &c.nonce);
            v.push_str("\", uri=\"");
            push_escaped(&mut v, req.uri);
            v.push_str("\", response=\"");
            v.push_str(&response);
            v.push_str("\", algorithm=");
            v.push_str(c.algorithm.name());
            if c.session {
                v.push_str("-sess");
            }
            if let Some(opaque) = &c.opaque {
                v.push_str(", opaque=\"");
                push_escaped(&mut v, opaque);
                v.push('"');
            }
            if c.qop != Qop::None {
                v.push_str(if c.qop == Qop::Auth {
                    ", qop=auth"
                } else {
                    ", qop=auth-int"
                });
                v.push_str(", nc=");
                v.push_str(&nc);
                v.push_str(", cnonce=\"");
                v.push_str(&cnonce);
                v.push('"');
            }
            out.push((c.kind.credentials_header(), v));
        }
        out
    }
}

/// The server side: whether `credentials` (an Authorization or
/// Proxy-Authorization value) prove knowledge of `password` for a request
/// with `method` and `body`. The caller still checks that the username,
/// realm and nonce are the ones it expects.
pub fn verify(credentials: &AuthParams<'_>, method: &str, password: &str, body: &[u8]) -> bool {
    let get = |name: &str| credentials.get(name);
    let (Some(username), Some(realm), Some(nonce), Some(uri), Some(response)) = (
        get("username"),
        get("realm"),
        get("nonce"),
        get("uri"),
        get("response"),
    ) else {
        return false;
    };
    if !credentials.scheme.eq_ignore_ascii_case("Digest") {
        return false;
    }
    // Rebuild the challenge the client answered from what it says it used.
    let mut text = String::with_capacity(160);
    text.push_str("Digest realm=\"");
    push_escaped(&mut text, &realm);
    text.push_str("\", nonce=\"");
    push_escaped(&mut text, &nonce);
    text.push('"');
    if let Some(alg) = get("algorithm") {
        text.push_str(", algorithm=");
        text.push_str(&alg);
    }
    let qop = get("qop");
    if let Some(q) = &qop {
        text.push_str(", qop=\"");
        text.push_str(q);
        text.push('"');
    }
    let Some(challenge) = Challenge::parse(ChallengeKind::Www, &text) else {
        return false;
    };
    let (cnonce, nc) = match qop {
        Some(_) => match (get("cnonce"), get("nc")) {
            (Some(c), Some(n)) => (c, n),
            _ => return false,
        },
        None => (Cow::Borrowed(""), Cow::Borrowed("")),
    };
    let req = RequestInfo {
        method,
        uri: &uri,
        body,
    };
    let expected = response_hash(&challenge, &username, password, &req, &cnonce, &nc);
    // Length first, then every byte: no early exit on the first difference.
    expected.len() == response.len()
        && expected
            .bytes()
            .zip(response.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// `nc` as eight hex digits (RFC 7616 §3.4).
fn nonce_count(n: u32) -> String {
    let mut s = String::with_capacity(8);
    for b in n.to_be_bytes() {
        push_hex_byte(&mut s, b);
    }
    s
}

/// Appends `s` escaped for a quoted-string (RFC 3261 §25.1 quoted-pair).
pub(crate) fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn challenge(kind: ChallengeKind, s: &str) -> Challenge {
        Challenge::parse(kind, s).expect("supported challenge")
    }

    #[test]
    fn rfc2617_section_3_5_vector() {
        let c = challenge(
            ChallengeKind::Www,
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        );
        let req = RequestInfo {
            method: "GET",
            uri: "/dir/index.html",
            body: b"",
        };
        let r = response_hash(&c, "Mufasa", "Circle Of Life", &req, "0a4f113b", "00000001");
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn rfc7616_section_3_9_1_vectors() {
        let req = RequestInfo {
            method: "GET",
            uri: "/dir/index.html",
            body: b"",
        };
        let base = "realm=\"http-auth@example.org\", qop=\"auth, auth-int\", nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        let md5 = challenge(ChallengeKind::Www, &format!("Digest {base}, algorithm=MD5"));
        assert_eq!(
            response_hash(&md5, "Mufasa", "Circle of Life", &req, cnonce, "00000001"),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
        let sha = challenge(
            ChallengeKind::Www,
            &format!("Digest {base}, algorithm=SHA-256"),
        );
        assert_eq!(
            response_hash(&sha, "Mufasa", "Circle of Life", &req, cnonce, "00000001"),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn rfc2069_no_qop_and_sess_variants_are_computed() {
        // No qop: response = H(HA1:nonce:HA2); checked against an
        // independently computed MD5 (echo -n ... | md5sum).
        let c = challenge(ChallengeKind::Proxy, "Digest realm=\"r\", nonce=\"n\"");
        let req = RequestInfo {
            method: "REGISTER",
            uri: "sip:r",
            body: b"",
        };
        let ha1 = Algorithm::Md5.hex(&[b"u:r:p"]);
        let ha2 = Algorithm::Md5.hex(&[b"REGISTER:sip:r"]);
        let want = Algorithm::Md5.hex(&[ha1.as_bytes(), b":n:", ha2.as_bytes()]);
        assert_eq!(response_hash(&c, "u", "p", &req, "cn", "00000001"), want);
        let s = challenge(
            ChallengeKind::Www,
            "Digest realm=\"r\", nonce=\"n\", algorithm=SHA-256-sess, qop=auth",
        );
        assert!(s.session);
        assert_eq!(s.algorithm, Algorithm::Sha256);
        assert_eq!(
            Algorithm::Md5.hex(&[b""]),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
        assert_eq!(
            Algorithm::Sha512_256.hex(&[b"abc"]),
            "53048e2681941ef99b2e29b76b4c7dabe4c2d0c634fc6d46e0e2f13107e7af23"
        );
    }

    #[test]
    fn the_server_side_accepts_what_the_client_side_computes() {
        for alg in ["MD5", "SHA-256", "SHA-512-256", "SHA-256-sess"] {
            let mut client = DigestClient::new("alice".into(), Secret::new("pw"));
            let mut rng = Rng::from_seed([4; 32]);
            let c = challenge(
                ChallengeKind::Www,
                &format!("Digest realm=\"r\", nonce=\"n\", qop=auth, algorithm={alg}"),
            );
            assert!(client.on_challenges(std::slice::from_ref(&c), &mut AuthRound::default()));
            let req = RequestInfo {
                method: "REGISTER",
                uri: "sip:r",
                body: b"",
            };
            let creds = client.credentials(&req, &mut rng);
            let params = AuthParams::parse(&creds[0].1).expect("credentials parse");
            assert!(verify(&params, "REGISTER", "pw", b""), "{alg}");
            assert!(!verify(&params, "REGISTER", "wrong", b""), "{alg}");
            assert!(
                !verify(&params, "INVITE", "pw", b""),
                "{alg}: method is covered"
            );
        }
        // RFC 2617 §3.5, as a server would receive it.
        let creds = "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", qop=auth, nc=00000001, cnonce=\"0a4f113b\", response=\"6629fae49393a05397450978507c4ef1\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";
        let params = AuthParams::parse(creds).expect("parses");
        assert!(verify(&params, "GET", "Circle Of Life", b""));
        assert!(!verify(
            &AuthParams::parse("Digest username=\"x\"").expect("parses"),
            "GET",
            "p",
            b""
        ));
    }

    #[test]
    fn unsupported_challenges_are_skipped_and_strongest_chosen() {
        assert!(Challenge::parse(ChallengeKind::Www, "Basic realm=\"x\"").is_none());
        assert!(
            Challenge::parse(
                ChallengeKind::Www,
                "Digest realm=\"x\", nonce=\"n\", algorithm=SHA-1"
            )
            .is_none()
        );
        assert!(Challenge::parse(ChallengeKind::Www, "Digest realm=\"x\"").is_none());
        let md5 = challenge(
            ChallengeKind::Www,
            "Digest realm=\"x\", nonce=\"1\", algorithm=MD5",
        );
        let sha = challenge(
            ChallengeKind::Www,
            "Digest realm=\"x\", nonce=\"2\", algorithm=SHA-256",
        );
        assert_eq!(
            choose([&md5, &sha]).map(|c| c.algorithm),
            Some(Algorithm::Sha256)
        );
    }

    #[test]
    fn nonce_count_advances_and_wrong_password_stops() {
        let mut client = DigestClient::new("alice".into(), Secret::new("pw"));
        let mut rng = Rng::from_seed([9; 32]);
        let c = challenge(
            ChallengeKind::Www,
            "Digest realm=\"r\", nonce=\"n1\", qop=\"auth\", opaque=\"o\"",
        );
        let mut round = AuthRound::default();
        assert!(client.on_challenges(std::slice::from_ref(&c), &mut round));
        let req = RequestInfo {
            method: "REGISTER",
            uri: "sip:r",
            body: b"",
        };
        let first = client.credentials(&req, &mut rng);
        let second = client.credentials(&req, &mut rng);
        assert_eq!(first[0].0, "Authorization");
        assert!(first[0].1.contains("nc=00000001"), "{}", first[0].1);
        assert!(second[0].1.contains("nc=00000002"));
        assert!(first[0].1.contains("opaque=\"o\""));
        assert!(first[0].1.contains("algorithm=MD5"));
        // Refused with a fresh challenge after we answered: stop.
        assert!(!client.on_challenges(std::slice::from_ref(&c), &mut round));
        assert!(client.credentials(&req, &mut rng).is_empty());
    }

    #[test]
    fn stale_is_honoured_once_and_only_with_a_new_nonce() {
        let mut client = DigestClient::new("alice".into(), Secret::new("pw"));
        let mut rng = Rng::from_seed([9; 32]);
        let req = RequestInfo {
            method: "REGISTER",
            uri: "sip:r",
            body: b"",
        };
        let mut round = AuthRound::default();
        let first = challenge(
            ChallengeKind::Www,
            "Digest realm=\"r\", nonce=\"n1\", qop=auth",
        );
        assert!(client.on_challenges(std::slice::from_ref(&first), &mut round));
        let stale_same = challenge(
            ChallengeKind::Www,
            "Digest realm=\"r\", nonce=\"n1\", qop=auth, stale=true",
        );
        let stale_new = challenge(
            ChallengeKind::Www,
            "Digest realm=\"r\", nonce=\"n2\", qop=auth, stale=true",
        );
        let stale_newer = challenge(
            ChallengeKind::Www,
            "Digest realm=\"r\", nonce=\"n3\", qop=auth, stale=true",
        );
        let (mut c2, mut r2) = (client.clone(), round.clone());
        assert!(
            !c2.on_challenges(std::slice::from_ref(&stale_same), &mut r2),
            "same nonce: a loop"
        );
        assert!(client.on_challenges(std::slice::from_ref(&stale_new), &mut round));
        let creds = client.credentials(&req, &mut rng);
        assert!(creds[0].1.contains("nonce=\"n2\"") && creds[0].1.contains("nc=00000001"));
        assert!(
            !client.on_challenges(std::slice::from_ref(&stale_newer), &mut round),
            "stale only once"
        );
    }

    #[test]
    fn proxy_and_registrar_challenges_are_answered_together() {
        let mut client = DigestClient::new("alice".into(), Secret::new("pw"));
        let mut rng = Rng::from_seed([9; 32]);
        let req = RequestInfo {
            method: "REGISTER",
            uri: "sip:r",
            body: b"",
        };
        let mut round = AuthRound::default();
        let proxy = challenge(
            ChallengeKind::Proxy,
            "Digest realm=\"edge\", nonce=\"p1\", qop=auth",
        );
        let registrar = challenge(
            ChallengeKind::Www,
            "Digest realm=\"home\", nonce=\"r1\", qop=auth",
        );
        assert!(client.on_challenges(std::slice::from_ref(&proxy), &mut round));
        assert!(
            client.on_challenges(std::slice::from_ref(&registrar), &mut round),
            "a new realm in the same round"
        );
        let creds = client.credentials(&req, &mut rng);
        let names: Vec<&str> = creds.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["Proxy-Authorization", "Authorization"]);
    }

    #[test]
    fn sess_keeps_its_first_cnonce_and_needs_qop() {
        assert!(
            Challenge::parse(
                ChallengeKind::Www,
                "Digest realm=\"r\", nonce=\"n\", algorithm=MD5-sess"
            )
            .is_none()
        );
        let odd = "Digest realm=\"r\", nonce=\"n\", algorithm=\u{e9}\u{e9}\u{e9}";
        assert!(
            Challenge::parse(ChallengeKind::Www, odd).is_none(),
            "multi-byte algorithm: refused, no panic"
        );
        let mut client = DigestClient::new("alice".into(), Secret::new("pw"));
        let mut rng = Rng::from_seed([9; 32]);
        let req = RequestInfo {
            method: "REGISTER",
            uri: "sip:r",
            body: b"",
        };
        let c = challenge(
            ChallengeKind::Www,
            "Digest realm=\"r\", nonce=\"n\", algorithm=MD5-sess, qop=auth",
        );
        assert!(client.on_challenges(std::slice::from_ref(&c), &mut AuthRound::default()));
        let cnonce = |v: &str| {
            v.split("cnonce=\"")
                .nth(1)
                .and_then(|r| r.get(..16))
                .map(str::to_owned)
        };
        let a = client.credentials(&req, &mut rng);
        let b = client.credentials(&req, &mut rng);
        assert_eq!(cnonce(&a[0].1), cnonce(&b[0].1));
    }
}
