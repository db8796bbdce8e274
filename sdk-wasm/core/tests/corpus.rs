//! Differential tests: the lean parser against `rsip`, the reference parser,
//! over one corpus of valid and torture messages (RFC 4475 and messages from
//! the systems sipline talks to). See `corpus/README.md` for each file.
//!
//! - Every valid message must parse, and where rsip parses it too, both must
//!   agree on method, Request-URI user and host, status, Call-ID, CSeq, the
//!   From/To tags and the top Via branch. rsip's own limits are listed, so
//!   that a change on either side shows up.
//! - Every invalid message must be refused, by the parser or by the typed
//!   accessor of the header that is broken; the few a lean parser accepts
//!   on purpose are listed with the reason.

use std::fs;
use std::path::{Path, PathBuf};

use rsip::headers::ToTypedHeader;
use rsip::prelude::{HeadersExt, UntypedHeader};
use sipline_core::sip::{HeaderName, Message, Method, NameAddr, Uri};

fn corpus(dir: &str) -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(dir);
    let mut files: Vec<PathBuf> = fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", root.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sip"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let bytes = fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (name, bytes)
        })
        .collect()
}

/// Valid messages rsip 0.4 cannot parse: its grammar is narrower than RFC
/// 3261 (folding, unusual tokens, non-SIP URIs, IPv6, UTF-8 reasons…).
/// Listed so that the oracle's blind spots are explicit.
const RSIP_REFUSES: &[&str] = &[
    "200_invite_compact_headers",  // compact header names (v, f, t…)
    "dblreq",                      // bytes after Content-Length
    "esc01",                       // %-escapes in the Request-URI
    "esc02",                       // '%' in a method token
    "folded_headers_200_register", // header folding
    "intmeth",                     // unusual method token characters
    "longreq",                     // "V :" spacing, very long values
    "semiuri",                     // ';' in the URI user part
    "unkscm",                      // non-SIP Request-URI scheme
    "unksm2",                      // non-SIP URIs in To/From
    "wsinv",                       // folding and LWS around separators
];

/// Invalid messages the lean parser accepts on purpose, and why.
const ACCEPTED_ON_PURPOSE: &[(&str, &str)] = &[
    (
        "baddate",
        "the UA never reads Date; RFC 4475 §3.1.2.12 lets such elements ignore it",
    ),
    (
        "escruri",
        "RFC 4475 §3.1.2.11 lets an element ignore headers in a Request-URI",
    ),
    (
        "lf_line_endings",
        "bare LF line ends are accepted leniently, as most stacks do",
    ),
];

/// What the UA reads of a message, through the lean parser.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    method: Option<String>,
    uri_user: Option<String>,
    uri_host: Option<String>,
    status: Option<u16>,
    call_id: String,
    cseq: (u32, String),
    from_tag: Option<String>,
    to_tag: Option<String>,
    branch: Option<String>,
}

fn lean(m: &Message<'_>) -> Seen {
    let uri = m.request_uri().and_then(Uri::parse);
    Seen {
        method: m.method_name().map(str::to_owned),
        uri_user: uri.and_then(|u| u.user).map(str::to_owned),
        uri_host: uri
            .map(|u| u.host.trim_matches(['[', ']']).to_owned())
            .filter(|h| !h.is_empty()),
        status: m.status(),
        call_id: m.call_id().to_owned(),
        cseq: (m.cseq().seq, m.cseq().method.to_owned()),
        from_tag: m.from().tag().map(str::to_owned),
        to_tag: m.to().tag().map(str::to_owned),
        branch: m.via().branch().map(str::to_owned),
    }
}

/// The same through rsip; `Err` names the field rsip could not read.
fn oracle(bytes: &[u8]) -> Result<Seen, String> {
    let msg = rsip::SipMessage::try_from(bytes).map_err(|e| format!("parse: {e}"))?;
    let (method, uri_user, uri_host, status) = match &msg {
        rsip::SipMessage::Request(r) => (
            Some(r.method().to_string()),
            r.uri().auth.as_ref().map(|a| a.user.clone()),
            Some(r.uri().host_with_port.host.to_string()),
            None,
        ),
        rsip::SipMessage::Response(r) => (None, None, None, Some(r.status_code().code())),
    };
    let cseq = msg.cseq_header().map_err(|e| format!("cseq: {e}"))?;
    let via = msg.via_header().map_err(|e| format!("via: {e}"))?;
    let via = via.typed().map_err(|e| format!("via typed: {e}"))?;
    Ok(Seen {
        method,
        uri_user,
        uri_host,
        status,
        call_id: msg
            .call_id_header()
            .map_err(|e| format!("call-id: {e}"))?
            .value()
            .to_owned(),
        cseq: (
            cseq.seq().map_err(|e| format!("cseq seq: {e}"))?,
            cseq.method()
                .map_err(|e| format!("cseq method: {e}"))?
                .to_string(),
        ),
        from_tag: msg
            .from_header()
            .and_then(|h| h.tag())
            .map_err(|e| format!("from tag: {e}"))?
            .map(|t| t.to_string()),
        to_tag: msg
            .to_header()
            .and_then(|h| h.tag())
            .map_err(|e| format!("to tag: {e}"))?
            .map(|t| t.to_string()),
        branch: via.branch().map(|b| b.to_string()),
    })
}

#[test]
fn valid_corpus_parses_and_agrees_with_rsip() {
    let files = corpus("valid");
    assert!(files.len() >= 40, "corpus missing? {} files", files.len());
    let mut agreed = 0;
    let mut problems = Vec::new();
    let mut refused_by_rsip = Vec::new();
    for (name, bytes) in &files {
        let ours = match Message::parse(bytes) {
            Ok(m) => lean(&m),
            Err(e) => {
                problems.push(format!("{name}: lean parser refused a valid message: {e}"));
                continue;
            }
        };
        // rsip reads a host out of any URI; the lean parser keeps non-SIP
        // URIs (e.g. RFC 4475 novelsc's soap.beep:) opaque.
        let oracle = oracle(bytes).map(|theirs| match ours.uri_host {
            None => Seen {
                uri_host: None,
                ..theirs
            },
            Some(_) => theirs,
        });
        match oracle {
            Ok(theirs) if theirs == ours => agreed += 1,
            Ok(theirs) => problems.push(format!(
                "{name}: disagreement\n  lean: {ours:?}\n  rsip: {theirs:?}"
            )),
            Err(why) => refused_by_rsip.push((name.clone(), why)),
        }
    }
    for (name, why) in &refused_by_rsip {
        if !RSIP_REFUSES.contains(&name.as_str()) {
            problems.push(format!(
                "{name}: rsip refused ({why}); add it to RSIP_REFUSES if rsip is wrong"
            ));
        }
    }
    for listed in RSIP_REFUSES {
        if !refused_by_rsip.iter().any(|(n, _)| n == listed) {
            problems.push(format!(
                "{listed}: listed in RSIP_REFUSES but rsip now reads it: remove it"
            ));
        }
    }
    eprintln!(
        "corpus: {} valid messages, {agreed} agree field by field with rsip, {} beyond rsip's grammar",
        files.len(),
        refused_by_rsip.len()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The typed reader of one header, as the user agent reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Accessor {
    Contact,
    Challenge,
    MinExpires,
}

/// Invalid messages the parser accepts because the broken header is one it
/// does not validate up front: each must be refused by that header's reader.
const CAUGHT_BY_ACCESSOR: &[(&str, Accessor)] = &[
    ("regbadct", Accessor::Contact),
    ("www_authenticate_unterminated_quote", Accessor::Challenge),
    ("min_expires_non_numeric", Accessor::MinExpires),
];

fn refused_by(m: &Message<'_>, accessor: Accessor) -> bool {
    match accessor {
        Accessor::Contact => m
            .header_values(HeaderName::Contact)
            .any(|c| c != "*" && NameAddr::parse(c).is_none()),
        Accessor::Challenge => m
            .header_lines(HeaderName::WwwAuthenticate)
            .any(|v| sipline_core::sip::AuthParams::parse(v).is_none()),
        Accessor::MinExpires => m
            .header(HeaderName::MinExpires)
            .is_some_and(|v| v.trim().parse::<u32>().is_err()),
    }
}

#[test]
fn invalid_corpus_is_refused() {
    let files = corpus("invalid");
    assert!(files.len() >= 30, "corpus missing? {} files", files.len());
    let mut problems = Vec::new();
    let mut by_parser = 0;
    let mut by_accessor = 0;
    for (name, bytes) in &files {
        let accepted_on_purpose = ACCEPTED_ON_PURPOSE.iter().any(|(f, _)| f == name);
        match Message::parse(bytes) {
            Err(_) if accepted_on_purpose => problems.push(format!(
                "{name}: now refused; drop it from ACCEPTED_ON_PURPOSE"
            )),
            Err(_) => by_parser += 1,
            Ok(m)
                if CAUGHT_BY_ACCESSOR
                    .iter()
                    .any(|(f, a)| f == name && refused_by(&m, *a)) =>
            {
                by_accessor += 1
            }
            Ok(_) if accepted_on_purpose => {}
            Ok(m) => problems.push(format!(
                "{name}: accepted an invalid message: {:?}",
                m.start_line()
            )),
        }
    }
    eprintln!(
        "corpus: {} invalid messages, {by_parser} refused by the parser, {by_accessor} by a header accessor, {} accepted on purpose",
        files.len(),
        ACCEPTED_ON_PURPOSE.len()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn error_reasons_are_specific() {
    let read = |dir: &str, name: &str| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/corpus")
            .join(dir)
            .join(format!("{name}.sip"));
        fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let err = |name: &str| {
        Message::parse(&read("invalid", name))
            .err()
            .map(|e| e.to_string())
    };
    assert_eq!(
        err("clerr").as_deref(),
        Some("Body shorter than Content-Length")
    );
    assert_eq!(err("ncl").as_deref(), Some("Malformed Content-Length"));
    assert_eq!(err("badvers").as_deref(), Some("Unsupported SIP version"));
    assert_eq!(
        err("mismatch01").as_deref(),
        Some("CSeq method does not match the request method")
    );
    assert_eq!(err("bigcode").as_deref(), Some("Malformed status code"));
    assert_eq!(
        err("huge_header_value_100k").as_deref(),
        Some("Header too long")
    );
    assert_eq!(err("empty").as_deref(), Some("Empty message"));
    // RFC 4475 dblreq: bytes after Content-Length on a message transport
    // are ignored (RFC 3261 §18.3).
    let dbl = read("valid", "dblreq");
    let m = Message::parse(&dbl).expect("dblreq parses");
    assert_eq!((m.method(), m.body().len()), (Some(Method::Register), 0));
}
