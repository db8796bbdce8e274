//! What the application hands the core, checked before it goes on the
//! wire: a target must be a SIP URI that cannot forge the start line, and
//! text that goes in a header or reason phrase has no line break.

/// Whether `target` can be a Request-URI as given: a SIP URI, with no
/// whitespace, control character or angle bracket that would let it forge
/// the start line or a header.
pub(crate) fn safe_target(target: &str) -> bool {
    !target
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
        && crate::sip::Uri::parse(target).is_some_and(|u| {
            u.scheme.eq_ignore_ascii_case("sip") || u.scheme.eq_ignore_ascii_case("sips")
        })
}

/// Whether `value` can go in a header or a reason phrase as given.
pub(crate) fn safe_text(value: &str) -> bool {
    !value.chars().any(|c| c.is_control() && c != '\t')
}
