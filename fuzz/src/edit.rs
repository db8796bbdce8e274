//! Mutations of real messages and bodies, chosen by the fuzzer: byte
//! edits anywhere, and line edits that keep the text's shape (so that a
//! mutated INVITE still reaches the code behind the parser).

use arbitrary::Arbitrary;

/// One change to a text. Positions and indexes wrap around the text's
/// length, so that every value the fuzzer picks means something.
#[derive(Arbitrary, Clone, Debug)]
pub enum Edit {
    /// Writes `bytes` over the text from `at`, growing it if need be.
    Overwrite {
        /// Where.
        at: u16,
        /// What.
        bytes: Vec<u8>,
    },
    /// Inserts `bytes` at `at`.
    Insert {
        /// Where.
        at: u16,
        /// What.
        bytes: Vec<u8>,
    },
    /// Removes up to `len` bytes from `at`.
    Delete {
        /// Where.
        at: u16,
        /// How many.
        len: u8,
    },
    /// Flips one bit.
    Flip {
        /// Which byte.
        at: u16,
        /// Which of its bits.
        bit: u8,
    },
    /// Replaces line `index` (its end of line kept) with `text`.
    Line {
        /// Which line.
        index: u8,
        /// Its new content.
        text: String,
    },
    /// Inserts a line before line `index`.
    InsertLine {
        /// Before which line.
        index: u8,
        /// Its content.
        text: String,
    },
    /// Removes line `index`.
    DropLine {
        /// Which line.
        index: u8,
    },
    /// Repeats line `index` right after it.
    DuplicateLine {
        /// Which line.
        index: u8,
    },
}

/// The longest text edits make: past one UDP datagram (so that the
/// relay's "too large" paths are reachable), short of wasting the
/// fuzzer's time on copies.
const MAX_TEXT: usize = 70_000;

/// `at` wrapped to a position in `0..=len`.
fn position(at: u16, len: usize) -> usize {
    usize::from(at) % (len + 1)
}

/// The byte ranges of each line of `text`, each with its line end.
fn lines(text: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &b) in text.iter().enumerate() {
        if b == b'\n' {
            out.push((start, i + 1));
            start = i + 1;
        }
    }
    if start < text.len() {
        out.push((start, text.len()));
    }
    out
}

/// The line-end bytes that end `line` (CRLF, LF or none).
fn line_end(line: &[u8]) -> &[u8] {
    if line.ends_with(b"\r\n") {
        &line[line.len() - 2..]
    } else if line.ends_with(b"\n") {
        &line[line.len() - 1..]
    } else {
        &[]
    }
}

impl Edit {
    /// Applies this edit to `text`, which it leaves at most [`MAX_TEXT`]
    /// bytes long.
    pub fn apply(&self, text: &mut Vec<u8>) {
        self.apply_unbounded(text);
        text.truncate(MAX_TEXT);
    }

    fn apply_unbounded(&self, text: &mut Vec<u8>) {
        match self {
            Edit::Overwrite { at, bytes } => {
                let at = position(*at, text.len());
                let end = (at + bytes.len()).min(text.len());
                text.splice(at..end, bytes.iter().copied());
            }
            Edit::Insert { at, bytes } => {
                let at = position(*at, text.len());
                text.splice(at..at, bytes.iter().copied());
            }
            Edit::Delete { at, len } => {
                let at = position(*at, text.len());
                let end = (at + usize::from(*len)).min(text.len());
                text.drain(at..end);
            }
            Edit::Flip { at, bit } => {
                if !text.is_empty() {
                    let at = usize::from(*at) % text.len();
                    text[at] ^= 1 << (bit % 8);
                }
            }
            Edit::Line { index, text: new } => {
                if let Some((start, end)) = pick_line(text, *index) {
                    let mut line = new.as_bytes().to_vec();
                    line.extend_from_slice(line_end(&text[start..end]));
                    text.splice(start..end, line);
                }
            }
            Edit::InsertLine { index, text: new } => {
                let (at, eol) = match pick_line(text, *index) {
                    Some((start, end)) => (start, line_end(&text[start..end]).to_vec()),
                    None => (text.len(), b"\r\n".to_vec()),
                };
                let mut line = new.as_bytes().to_vec();
                line.extend_from_slice(if eol.is_empty() { b"\r\n" } else { &eol });
                text.splice(at..at, line);
            }
            Edit::DropLine { index } => {
                if let Some((start, end)) = pick_line(text, *index) {
                    text.drain(start..end);
                }
            }
            Edit::DuplicateLine { index } => {
                // The copy goes before the line, with a line end of its
                // own: a last line without one is not doubled in length.
                if let Some((start, end)) = pick_line(text, *index) {
                    let mut line = text[start..end].to_vec();
                    if line_end(&line).is_empty() {
                        line.extend_from_slice(b"\r\n");
                    }
                    text.splice(start..start, line);
                }
            }
        }
    }
}

/// Line `index` of `text`, wrapped; `None` for an empty text.
fn pick_line(text: &[u8], index: u8) -> Option<(usize, usize)> {
    let all = lines(text);
    (!all.is_empty()).then(|| all[usize::from(index) % all.len()])
}

/// Applies every edit, in order.
pub fn apply_all(text: &mut Vec<u8>, edits: &[Edit]) {
    for e in edits {
        e.apply(text);
    }
}

/// Makes a SIP message's `Content-Length` (or `l`) say how many bytes
/// follow the blank line, so that edits of the body or the headers do not
/// all end at the parser's length check. A message without the header or
/// the blank line is left alone.
pub fn fix_content_length(message: &mut Vec<u8>) {
    let Some(blank) = message.windows(4).position(|w| w == b"\r\n\r\n") else {
        return;
    };
    let body_len = message.len() - (blank + 4);
    let head = &message[..blank + 2];
    let Some((start, end)) = lines(head).into_iter().find(|&(s, e)| {
        let name = head[s..e].split(|&b| b == b':').next().unwrap_or_default();
        let name = name.trim_ascii();
        name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")
    }) else {
        return;
    };
    let colon = start
        + head[start..end]
            .iter()
            .position(|&b| b == b':')
            .unwrap_or_default();
    let value_end = end - line_end(&head[start..end]).len();
    message.splice(colon + 1..value_end, format!(" {body_len}").into_bytes());
}
