//! A fast path for the YAML most Flink configs are: one document of block maps whose
//! keys are single-line plain scalars and whose values are single-line plain scalars or
//! quoted ones without escapes (`"2"`, as operator manifests write numbers), with
//! comments and blank lines.
//!
//! Why: a general YAML parser costs about 20 µs for a 40-option `config.yaml` on these
//! machines, the whole budget of a lint (BENCHMARKS.md). This reader handles only that
//! subset and answers `None` for anything else (quotes, flow collections, sequences,
//! anchors, block scalars, multi-line scalars, tabs, non-ASCII, null values, several
//! documents, errors), which then goes to `saphyr-parser`. When it answers, its tree is
//! exactly the one the general path builds, positions included: `tests/yaml_simple.rs`
//! compares both on the corpus and the `yaml_simple` fuzz target on arbitrary input.

use crate::scan::find_pair;
use crate::yaml_tree::{Document, MAX_DEPTH, Node, Pos, Style, Value};

/// Whether `b` may not start a plain scalar here (a YAML indicator), or makes a key
/// something other than plain text.
const fn is_indicator(b: u8) -> bool {
    // A match, not a byte list's `contains`: that is a call to `memchr`, which cost more
    // than the rest of a line's checks in the component (issue 16).
    matches!(
        b,
        b'-' | b'?'
            | b':'
            | b','
            | b'['
            | b']'
            | b'{'
            | b'}'
            | b'#'
            | b'&'
            | b'*'
            | b'!'
            | b'|'
            | b'>'
            | b'\''
            | b'"'
            | b'%'
            | b'@'
            | b'`'
    )
}

/// The longest key the fast path reads (YAML's limit for implicit keys is 1024).
const MAX_SIMPLE_KEY: usize = 1000;

struct Frame {
    indent: usize,
    pos: Pos,
    entries: Vec<(Node, Node)>,
    /// A `key:` with nothing after it, waiting for its nested map.
    pending: Option<Node>,
}

/// The document, or `None` when the text is outside the subset.
pub fn parse(text: &str) -> Option<Document> {
    if !plain_ascii(text.as_bytes()) {
        return None;
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut first: Option<Pos> = None;
    for (i, line) in crate::scan::split_newlines(text).enumerate() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let rest = &line[indent..];
        if rest.is_empty() || rest.starts_with('#') {
            continue;
        }
        // Document markers and directives.
        if indent == 0 && (rest.starts_with("---") || rest.starts_with("...")) {
            return None;
        }
        let line_no = i + 1;
        let (key, value, value_col) = split_line(rest, indent)?;
        let key_pos = Pos::new(line_no, indent + 1);

        // Place the line in the tree by its indentation.
        match stack.last_mut() {
            None if indent == 0 => {
                first = Some(key_pos);
                stack.push(Frame {
                    indent,
                    pos: key_pos,
                    entries: Vec::new(),
                    pending: None,
                });
            }
            None => return None,
            Some(top) if top.pending.is_some() => {
                // The previous `key:` opens a map only if this line is deeper; otherwise
                // its value is null, which the general path spells out.
                if indent <= top.indent || stack.len() >= MAX_DEPTH {
                    return None;
                }
                stack.push(Frame {
                    indent,
                    pos: key_pos,
                    entries: Vec::new(),
                    pending: None,
                });
            }
            Some(_) => {
                while stack.last().is_some_and(|f| indent < f.indent) {
                    close(&mut stack);
                }
                // Deeper without an opening `key:` is a continuation line; between two
                // levels is an error. Both go to the general path.
                if stack.last().map(|f| f.indent) != Some(indent) {
                    return None;
                }
            }
        }

        let top = stack.last_mut()?;
        let key_node = Node {
            value: Value::Scalar {
                text: key.to_string(),
                style: Style::Plain,
            },
            pos: Some(key_pos),
        };
        match value {
            None => top.pending = Some(key_node),
            Some((v, style)) => top.entries.push((
                key_node,
                Node {
                    value: Value::Scalar {
                        text: v.to_string(),
                        style,
                    },
                    pos: Some(Pos::new(line_no, value_col + 1)),
                },
            )),
        }
    }
    if stack.last().is_some_and(|f| f.pending.is_some()) {
        return None;
    }
    while stack.len() > 1 {
        close(&mut stack);
    }
    let root = stack.pop()?;
    Some(Document {
        root: Some(Node {
            value: Value::Map(root.entries),
            pos: Some(root.pos),
        }),
        pos: first?,
    })
}

/// Ends the innermost map and hangs it under its parent's pending key.
fn close(stack: &mut Vec<Frame>) {
    let Some(done) = stack.pop() else { return };
    let node = Node {
        value: Value::Map(done.entries),
        pos: Some(done.pos),
    };
    if let Some(parent) = stack.last_mut()
        && let Some(key) = parent.pending.take()
    {
        parent.entries.push((key, node));
    }
}

/// ASCII without control characters but `\n` (no tab, no `\r`): the subset's alphabet.
/// Checked 32 bytes at a time with no early exit inside a block, so the compiler
/// vectorises it (SSE2 natively, simd128 in the component); a byte-at-a-time `any` was a
/// fifth of the component's time on a FlinkDeployment (issue 16).
fn plain_ascii(bytes: &[u8]) -> bool {
    fn outside(b: u8) -> bool {
        b >= 0x80 || (b < b' ' && b != b'\n')
    }
    let mut blocks = bytes.chunks_exact(32);
    for block in &mut blocks {
        if block.iter().fold(false, |seen, &b| seen | outside(b)) {
            return false;
        }
    }
    !blocks.remainder().iter().any(|&b| outside(b))
}

/// A line split by [`split_line`]: the key, the value and its style, the value's column.
type SplitLine<'a> = (&'a str, Option<(&'a str, Style)>, usize);

/// Splits `key: value  # comment` (the line without its indentation) into the key, the
/// value and its style (`None` for `key:`) and the value's 0-based column; `None` if
/// outside the subset.
fn split_line(rest: &str, indent: usize) -> Option<SplitLine<'_>> {
    let bytes = rest.as_bytes();
    let colon = memchr::memchr_iter(b':', bytes).find(|&i| i + 1 == bytes.len() || bytes[i + 1] == b' ')?;
    let key = &rest[..colon];
    // YAML caps implicit keys at 1024 characters (the general parser rejects longer
    // ones); decline well before that.
    if key.is_empty()
        || key.len() > MAX_SIMPLE_KEY
        || is_indicator(bytes[0])
        || key.ends_with(' ')
        || find_pair(key.as_bytes(), b' ', b'#').is_some()
        || key
            .bytes()
            .any(|b| matches!(b, b'[' | b']' | b'{' | b'}' | b',' | b'"' | b'\''))
    {
        return None;
    }
    let after = &rest[colon + 1..];
    let lead = after.len() - after.trim_start_matches(' ').len();
    let body = &after[lead..];
    if body.is_empty() || body.starts_with('#') {
        return Some((key, None, 0));
    }
    let column = indent + colon + 1 + lead;
    if let Some(quote @ (b'"' | b'\'')) = body.bytes().next() {
        return quoted(&body[1..], quote).map(|text| (key, Some((text, Style::Quoted)), column));
    }
    // A comment starts at ` #`; the value ends before it, without trailing blanks.
    let value = match find_pair(body.as_bytes(), b' ', b'#') {
        Some(at) => &body[..at],
        None => body,
    }
    .trim_end_matches(' ');
    let vb = value.as_bytes();
    let starts_with_indicator = match vb[0] {
        // `-`, `?` and `:` may start a plain scalar when a non-blank follows (`--opts`).
        b'-' | b'?' | b':' => vb.len() < 2 || vb[1] == b' ',
        b => is_indicator(b),
    };
    if starts_with_indicator || find_pair(vb, b':', b' ').is_some() || value.ends_with(':') {
        return None;
    }
    Some((key, Some((value, Style::Plain)), column))
}

/// The text of a quoted scalar whose opening quote was just cut off: only when it has
/// no escapes (no `\\` in double quotes, no `''` in single ones) and nothing but blanks or
/// a ` #` comment follows the closing quote.
fn quoted(after_open: &str, quote: u8) -> Option<&str> {
    let bytes = after_open.as_bytes();
    let close = bytes.iter().position(|&b| b == quote || b == b'\\')?;
    if bytes[close] != quote {
        return None;
    }
    let tail = &bytes[close + 1..];
    let blanks = tail.iter().take_while(|&&b| b == b' ').count();
    match tail.get(blanks) {
        None => Some(&after_open[..close]),
        Some(b'#') if blanks > 0 => Some(&after_open[..close]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::plain_ascii;

    #[test]
    fn plain_ascii_finds_a_bad_byte_anywhere() {
        for len in [0, 1, 31, 32, 33, 64, 70] {
            let text = vec![b'a'; len];
            assert!(plain_ascii(&text));
            let mut with_newlines = text.clone();
            with_newlines.iter_mut().step_by(5).for_each(|b| *b = b'\n');
            assert!(plain_ascii(&with_newlines));
            for at in 0..len {
                for bad in [b'\t', b'\r', 0, 0x7f - 0x60, 0x80, 0xff] {
                    let mut text = text.clone();
                    text[at] = bad;
                    assert!(!plain_ascii(&text), "{bad:#x} at {at} of {len}");
                }
            }
        }
    }
}
