//! A JSON writer for the records that cross to JavaScript: the core's
//! events, read there with one `JSON.parse`.
//!
//! By hand, not serde_json: an event is a flat object of strings, numbers
//! and booleans (with a few small nested ones), and writing that needs a
//! string escaper and the core's integer printer, a few hundred bytes of wasm,
//! where serde's derive and `core::fmt` would cost tens of kilobytes of the
//! SDK's budget. Building the object on the JavaScript side field by field
//! (one import call per field) was larger still.

use crate::prelude::*;
use sipline_core::sip::push_decimal;

/// One JSON text being written. Keys and values go in order; commas are
/// placed by looking at what came last, so nesting needs no stack.
pub(crate) struct Json(String);

impl Json {
    pub(crate) fn new() -> Self {
        Self(String::with_capacity(128))
    }

    pub(crate) fn finish(self) -> String {
        self.0
    }

    /// Opens an object, under `key` when inside another object.
    pub(crate) fn open(&mut self, key: Option<&str>) -> &mut Self {
        self.key(key);
        self.0.push('{');
        self
    }

    pub(crate) fn close(&mut self) -> &mut Self {
        self.0.push('}');
        self
    }

    /// Opens an array under `key` (or as the top value).
    pub(crate) fn open_list(&mut self, key: Option<&str>) -> &mut Self {
        self.key(key);
        self.0.push('[');
        self
    }

    pub(crate) fn close_list(&mut self) -> &mut Self {
        self.0.push(']');
        self
    }

    /// A string value under `key` (`None`: an array's element).
    #[inline(never)]
    pub(crate) fn str(&mut self, key: Option<&str>, value: &str) -> &mut Self {
        self.key(key);
        quote(&mut self.0, value);
        self
    }

    /// An unsigned integer (ids, codes, seconds, milliseconds: JavaScript
    /// numbers hold them exactly below 2^53).
    #[inline(never)]
    pub(crate) fn num(&mut self, key: &str, value: u64) -> &mut Self {
        self.key(Some(key));
        push_decimal(&mut self.0, value);
        self
    }

    pub(crate) fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.key(Some(key));
        self.0.push_str(if value { "true" } else { "false" });
        self
    }

    /// A string under `key` when there is one; nothing otherwise (the
    /// field is then `undefined` in JavaScript, as an absent option is).
    pub(crate) fn opt_str(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.str(Some(key), v),
            None => self,
        }
    }

    pub(crate) fn opt_num(&mut self, key: &str, value: Option<u64>) -> &mut Self {
        match value {
            Some(v) => self.num(key, v),
            None => self,
        }
    }

    /// The comma before a member (unless it is the first) and its key.
    fn key(&mut self, key: Option<&str>) {
        if !matches!(self.0.as_bytes().last(), None | Some(b'{' | b'[')) {
            self.0.push(',');
        }
        if let Some(key) = key {
            quote(&mut self.0, key);
            self.0.push(':');
        }
    }
}

/// `s` as a JSON string: quotes, backslashes and control characters
/// escaped (RFC 8259 §7), everything else as it is.
fn quote(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c < ' ' => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(c as u8 >> 4)]));
                out.push(char::from(HEX[usize::from(c as u8 & 15)]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_objects_lists_and_escapes() {
        let mut j = Json::new();
        j.open_list(None).str(None, "incoming").open(None);
        j.num("call", 7)
            .num("zero", 0)
            .num("max", u64::from(u32::MAX))
            .str(Some("from"), "sip:a\"b\\c@d")
            .str(Some("body"), "line\r\n\u{1}é")
            .bool("hasOffer", true)
            .opt_str("displayName", None)
            .opt_num("code", Some(486));
        j.open_list(Some("list"))
            .open(None)
            .bool("x", false)
            .close();
        j.open(None).close().close_list();
        j.close().close_list();
        assert_eq!(
            j.finish(),
            r#"["incoming",{"call":7,"zero":0,"max":4294967295,"from":"sip:a\"b\\c@d","body":"line\u000d\u000a\u0001é","hasOffer":true,"code":486,"list":[{"x":false},{}]}]"#
        );
    }
}
