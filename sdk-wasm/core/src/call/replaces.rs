//! Attended transfer (RFC 5589 §7): one call replacing another with the
//! Replaces header (RFC 3891), in all three roles.
//!
//! - Transferor: a REFER in the call to be transferred whose Refer-To is
//!   the far end of the other call (the consultation), carrying a
//!   `Replaces` that names that call's dialog as its far end sees it.
//! - Transferee: that REFER's target is called with the `Replaces` header
//!   (see [`super::refer`]).
//! - Target: an INVITE whose `Replaces` names one of our confirmed calls
//!   takes its place: the new call is reported with the call it replaces,
//!   and once it is up the old one ends with a BYE. One that names no call
//!   of ours gets `481`; one that asks to replace only an early dialog
//!   (`early-only`) of a call already up gets `486` (RFC 3891 §3).

use super::{CallState, Calls};
use crate::ctx::Ctx;
use crate::dialog::DialogState;
use crate::error::ActionError;
use crate::event::Event;
use crate::ids::CallId;
use crate::prelude::*;
use crate::sip::{HeaderName, Message};

/// Why an INVITE's Replaces cannot be honoured: its status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Refusal(pub u16, pub &'static str);

impl Calls {
    /// Attended transfer: asks the far end of call `id`, with a REFER, to
    /// call the far end of call `other` in its place (`other`'s far end
    /// then ends its call with us). Progress arrives as for
    /// [`Calls::transfer`].
    pub fn transfer_replacing(
        &mut self,
        cx: &mut Ctx<'_>,
        id: CallId,
        other: CallId,
    ) -> Result<(), ActionError> {
        if id == other {
            return Err(ActionError::BadTarget("other"));
        }
        let not_up = self.not_up(other);
        let dialog = self
            .dialog_mut(other)
            .filter(|d| d.state() == DialogState::Confirmed)
            .ok_or(not_up)?;
        let uri = dialog
            .remote_uri()
            .ok_or(ActionError::WrongState(other))?
            .to_owned();
        // RFC 3891 §3: the target matches to-tag against its own tag and
        // from-tag against ours.
        let replaces = [
            dialog.call_id(),
            ";to-tag=",
            dialog.remote_tag(),
            ";from-tag=",
            dialog.local_tag(),
        ]
        .concat();
        let mut refer_to = String::with_capacity(uri.len() + replaces.len() * 2 + 16);
        refer_to.push('<');
        refer_to.push_str(&uri);
        refer_to.push_str("?Replaces=");
        escape_into(&mut refer_to, &replaces);
        refer_to.push('>');
        self.send_refer(cx, id, &refer_to)
    }

    /// The call an INVITE's `Replaces` names: `Ok(None)` when it has none,
    /// the refusal when it names none of our calls that are up.
    pub(super) fn replaced_by(&self, msg: &Message<'_>) -> Result<Option<CallId>, Refusal> {
        let Some(value) = msg.header(HeaderName::Other("Replaces")) else {
            return Ok(None);
        };
        let (call_id, to_tag, from_tag, early_only) =
            parse_replaces(value).ok_or(Refusal(400, "Bad Replaces"))?;
        let matches = |d: &crate::dialog::Dialog| {
            d.call_id() == call_id && d.local_tag() == to_tag && d.remote_tag() == from_tag
        };
        let made = self
            .calls
            .iter()
            .filter(|c| c.state == CallState::Confirmed)
            .filter_map(|c| c.dialog.as_ref().filter(|d| matches(d)).map(|_| c.id));
        let received = self
            .incoming
            .iter()
            .filter(|c| c.retransmit.is_none() && !c.bye_wanted && c.bye_tx.is_none())
            .filter_map(|c| c.dialog.as_ref().filter(|d| matches(d)).map(|_| c.id));
        match made.chain(received).next() {
            Some(_) if early_only => Err(Refusal(486, "Busy Here")),
            Some(id) => Ok(Some(id)),
            None => Err(Refusal(481, "Call/Transaction Does Not Exist")),
        }
    }

    /// Call `new`, which replaces `old`, is up: `old` ends with a BYE.
    pub(super) fn replaced(&mut self, cx: &mut Ctx<'_>, new: CallId, old: CallId) {
        if self.knows(old) {
            cx.events.push(Event::Replaced { call: old, by: new });
            self.hangup(cx, old);
        }
    }
}

/// `callid;to-tag=…;from-tag=…[;early-only]`: the Call-ID, the tags and
/// whether only an early dialog may be replaced.
fn parse_replaces(value: &str) -> Option<(&str, &str, &str, bool)> {
    let mut parts = value.split(';').map(str::trim);
    let call_id = parts.next().filter(|c| !c.is_empty())?;
    let (mut to_tag, mut from_tag, mut early_only) = (None, None, false);
    for part in parts {
        let (name, v) = part.split_once('=').unwrap_or((part, ""));
        match name.trim().to_ascii_lowercase().as_str() {
            "to-tag" => to_tag = Some(v.trim()),
            "from-tag" => from_tag = Some(v.trim()),
            "early-only" => early_only = true,
            _ => {}
        }
    }
    Some((call_id, to_tag?, from_tag?, early_only))
}

/// Appends `value` escaped for a URI header (RFC 3261 §25.1 `hvalue`):
/// everything but unreserved characters as `%XX`.
fn escape_into(out: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
}

/// `%XX` escapes decoded; `None` when one is broken or the result is not
/// UTF-8.
pub(super) fn unescape(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = core::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaces_value_survives_escaping_into_a_uri_and_back() {
        let value = "a84b4c76e66710@pc33.atlanta.example;to-tag=1928301774;from-tag=a6c85cf";
        let mut escaped = String::new();
        escape_into(&mut escaped, value);
        assert_eq!(
            escaped,
            "a84b4c76e66710%40pc33.atlanta.example%3Bto-tag%3D1928301774%3Bfrom-tag%3Da6c85cf"
        );
        assert_eq!(unescape(&escaped).as_deref(), Some(value));
        assert_eq!(unescape("%4"), None);
        assert_eq!(unescape("%zz"), None);
        assert_eq!(
            parse_replaces(" abc@h ; from-tag=f ;to-tag=t;early-only"),
            Some(("abc@h", "t", "f", true))
        );
        assert_eq!(parse_replaces("abc@h;to-tag=t"), None, "no from-tag");
        assert_eq!(parse_replaces(";to-tag=t;from-tag=f"), None, "no Call-ID");
    }
}
