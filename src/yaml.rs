//! A YAML document tree that remembers where every node came from.
//!
//! Built from `saphyr-parser` events rather than a ready-made loader because the linter
//! needs three things loaders do not give together: the line and column of every key
//! and value, duplicate keys kept (not silently merged) so they can be reported, and hard
//! bounds on nesting depth and alias expansion so that hostile input ("billion laughs",
//! 100 000 nested brackets) costs bounded time and memory.
//!
//! All scalars are kept as text: Flink reads every option as a string, and the linter
//! interprets values itself (durations, integers, URIs).

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// Deepest nesting of maps and sequences accepted. Real Flink configs and Kubernetes
/// manifests stay far below this; the bound keeps recursion in later passes safe.
pub const MAX_DEPTH: usize = 64;

/// Most nodes a stream may expand to, aliases included (an alias costs the size of what
/// it points to). A 1 MiB ConfigMap has at most a few hundred thousand nodes.
pub const MAX_NODES: usize = 500_000;

/// A 1-based line and column (columns count characters, not bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

impl Pos {
    pub fn new(line: usize, column: usize) -> Pos {
        Pos {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
        }
    }

    fn from_span(span: &Span) -> Pos {
        Pos::new(span.start.line(), span.start.col() + 1)
    }
}

/// How a scalar was written; decides how embedded text maps back to positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Plain,
    Quoted,
    Literal,
    Folded,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Scalar { text: String, style: Style },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// One node; `pos` is `None` for trees built from JSON objects (admission requests).
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: Value,
    pub pos: Option<Pos>,
}

impl Node {
    pub fn scalar(text: impl Into<String>, pos: Option<Pos>) -> Node {
        Node {
            value: Value::Scalar {
                text: text.into(),
                style: Style::Plain,
            },
            pos,
        }
    }

    /// The scalar text, for any scalar (null included, as its spelling).
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// YAML 1.2 core-schema null: `~`, `null` in its three spellings, or nothing.
    pub fn is_null(&self) -> bool {
        match &self.value {
            Value::Scalar {
                text,
                style: Style::Plain,
            } => matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"),
            _ => false,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// The entry under `key` in a map (the last one if the key repeats, as loaders do).
    pub fn entry(&self, key: &str) -> Option<(&Node, &Node)> {
        self.as_map()?
            .iter()
            .rev()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(k, v)| (k, v))
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    /// Follows a path of map keys.
    pub fn path(&self, keys: &[&str]) -> Option<&Node> {
        keys.iter().try_fold(self, |node, key| node.get(key))
    }

    pub fn str_at(&self, keys: &[&str]) -> Option<&str> {
        self.path(keys).filter(|n| !n.is_null())?.as_str()
    }

    /// Renders a node the way Flink turns a YAML value into an option string: scalars
    /// as written, sequences and maps in flow style.
    pub fn to_flow_string(&self) -> String {
        let mut out = String::new();
        self.write_flow(&mut out);
        out
    }

    fn write_flow(&self, out: &mut String) {
        match &self.value {
            Value::Scalar { text, .. } => out.push_str(text),
            Value::Seq(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write_flow(out);
                }
                out.push(']');
            }
            Value::Map(entries) => {
                out.push('{');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    k.write_flow(out);
                    out.push_str(": ");
                    v.write_flow(out);
                }
                out.push('}');
            }
        }
    }

    /// Converts a JSON value (an object inside an AdmissionReview) into a tree without
    /// positions. JSON nesting is already bounded by serde_json's recursion limit.
    pub fn from_json(value: &serde_json::Value) -> Node {
        let value = match value {
            serde_json::Value::Null => Value::Scalar {
                text: String::new(),
                style: Style::Plain,
            },
            serde_json::Value::Bool(b) => Value::Scalar {
                text: b.to_string(),
                style: Style::Plain,
            },
            serde_json::Value::Number(n) => Value::Scalar {
                text: n.to_string(),
                style: Style::Plain,
            },
            serde_json::Value::String(s) => Value::Scalar {
                text: s.clone(),
                style: Style::Quoted,
            },
            serde_json::Value::Array(items) => Value::Seq(items.iter().map(Node::from_json).collect()),
            serde_json::Value::Object(map) => Value::Map(
                map.iter()
                    .map(|(k, v)| {
                        (
                            Node {
                                value: Value::Scalar {
                                    text: k.clone(),
                                    style: Style::Quoted,
                                },
                                pos: None,
                            },
                            Node::from_json(v),
                        )
                    })
                    .collect(),
            ),
        };
        Node { value, pos: None }
    }
}

/// One document of a stream. `root` is `None` for an empty document.
#[derive(Debug, PartialEq)]
pub struct Document {
    pub root: Option<Node>,
    /// Where the document starts (its `---` or first node).
    pub pos: Pos,
}

/// Why a stream could not be read (further), with the place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub message: String,
    pub pos: Pos,
}

/// The documents read before any error, and the error that stopped reading.
#[derive(Debug, PartialEq)]
pub struct Stream {
    pub documents: Vec<Document>,
    pub error: Option<SyntaxError>,
}

enum Frame {
    Seq {
        anchor: usize,
        pos: Pos,
        items: Vec<Node>,
    },
    Map {
        anchor: usize,
        pos: Pos,
        entries: Vec<(Node, Node)>,
        pending_key: Option<Node>,
    },
}

/// Reads a YAML stream into documents. Never panics and never recurses: nesting is
/// tracked on an explicit stack bounded by [`MAX_DEPTH`].
pub fn parse_stream(text: &str) -> Stream {
    parse_stream_simple(text).unwrap_or_else(|| parse_stream_full(text))
}

/// The fast path alone (`yaml_simple.rs`): the stream when the text is in the simple
/// subset, else `None`. Public for the differential tests, which compare it with
/// [`parse_stream_full`] wherever it answers.
pub fn parse_stream_simple(text: &str) -> Option<Stream> {
    crate::yaml_simple::parse(text).map(|document| Stream {
        documents: vec![document],
        error: None,
    })
}

/// The general path: every YAML construct, through `saphyr-parser`'s events.
pub fn parse_stream_full(text: &str) -> Stream {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    let error = loop {
        match parser.next_event() {
            None => break None,
            Some(Err(e)) => {
                let mark = e.marker();
                break Some(SyntaxError {
                    message: e.info().to_string(),
                    pos: Pos::new(mark.line(), mark.col() + 1),
                });
            }
            Some(Ok((event, span))) => match builder.push(event, &span) {
                Ok(true) => break None,
                Ok(false) => {}
                Err(message) => {
                    break Some(SyntaxError {
                        message,
                        pos: Pos::from_span(&span),
                    });
                }
            },
        }
    };
    Stream {
        documents: builder.documents,
        error,
    }
}

#[derive(Default)]
struct Builder {
    documents: Vec<Document>,
    doc_pos: Option<Pos>,
    doc_root: Option<Node>,
    stack: Vec<Frame>,
    /// Anchored nodes with their sizes, by anchor id (ids are small integers from 1).
    anchors: Vec<Option<(Node, usize)>>,
    /// Size of each open collection, to price anchors on collections.
    sizes: Vec<usize>,
    nodes: usize,
}

impl Builder {
    /// Takes one event; `Ok(true)` at the end of the stream.
    fn push(&mut self, event: Event<'_>, span: &Span) -> Result<bool, String> {
        let pos = Pos::from_span(span);
        match event {
            Event::StreamEnd => return Ok(true),
            Event::StreamStart | Event::Nothing => {}
            Event::DocumentStart(_) => {
                self.doc_pos = Some(pos);
                self.doc_root = None;
                self.anchors.clear();
            }
            Event::DocumentEnd => {
                let pos = self.doc_pos.take().unwrap_or(pos);
                // `---` followed by nothing (or by `~`) is an empty document.
                let root = self.doc_root.take().filter(|r| !r.is_null());
                self.documents.push(Document { root, pos });
            }
            Event::Scalar(text, style, anchor, _tag) => {
                let style = match style {
                    ScalarStyle::Plain => Style::Plain,
                    ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => Style::Quoted,
                    ScalarStyle::Literal => Style::Literal,
                    ScalarStyle::Folded => Style::Folded,
                };
                self.count(1)?;
                self.grow(1);
                let node = Node {
                    value: Value::Scalar {
                        text: text.into_owned(),
                        style,
                    },
                    pos: Some(pos),
                };
                self.remember(anchor, &node, 1);
                self.attach(node);
            }
            Event::Alias(id) => {
                let (node, size) = self
                    .anchors
                    .get(id)
                    .and_then(|a| a.as_ref())
                    .map(|(n, s)| (n.clone(), *s))
                    .ok_or_else(|| "alias to an unknown anchor".to_string())?;
                self.count(size)?;
                self.grow(size);
                self.attach(node);
            }
            Event::SequenceStart(anchor, _) => {
                self.open()?;
                self.stack.push(Frame::Seq {
                    anchor,
                    pos,
                    items: Vec::new(),
                });
            }
            Event::MappingStart(anchor, _) => {
                self.open()?;
                self.stack.push(Frame::Map {
                    anchor,
                    pos,
                    entries: Vec::new(),
                    pending_key: None,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let size = self.sizes.pop().unwrap_or(1);
                let (node, anchor) = match self.stack.pop() {
                    Some(Frame::Seq { anchor, pos, items }) => (
                        Node {
                            value: Value::Seq(items),
                            pos: Some(pos),
                        },
                        anchor,
                    ),
                    Some(Frame::Map {
                        anchor, pos, entries, ..
                    }) => (
                        Node {
                            value: Value::Map(entries),
                            pos: Some(pos),
                        },
                        anchor,
                    ),
                    None => return Err("unbalanced collection end".to_string()),
                };
                self.remember(anchor, &node, size);
                self.grow(size);
                self.attach(node);
            }
        }
        Ok(false)
    }

    fn open(&mut self) -> Result<(), String> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(format!("nesting deeper than {MAX_DEPTH} levels"));
        }
        self.count(1)?;
        self.sizes.push(1);
        Ok(())
    }

    /// Adds `n` nodes to the stream's total, refusing past [`MAX_NODES`].
    fn count(&mut self, n: usize) -> Result<(), String> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            return Err(format!(
                "the document expands to more than {MAX_NODES} nodes (aliases or sheer size); refusing to read further"
            ));
        }
        Ok(())
    }

    /// Adds to the size of the innermost open collection (what an anchor on it costs).
    fn grow(&mut self, n: usize) {
        if let Some(top) = self.sizes.last_mut() {
            *top = top.saturating_add(n);
        }
    }

    fn remember(&mut self, anchor: usize, node: &Node, size: usize) {
        if anchor == 0 {
            return;
        }
        if self.anchors.len() <= anchor {
            self.anchors.resize(anchor + 1, None);
        }
        self.anchors[anchor] = Some((node.clone(), size));
    }

    fn attach(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => self.doc_root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries, pending_key, ..
            }) => match pending_key.take() {
                None => *pending_key = Some(node),
                Some(key) => entries.push((key, node)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let s = parse_stream("a:\n  b: 1\n");
        let root = s.documents[0].root.as_ref().unwrap();
        let (k, v) = root.get("a").unwrap().entry("b").unwrap();
        assert_eq!(k.pos, Some(Pos { line: 2, column: 3 }));
        assert_eq!(v.pos, Some(Pos { line: 2, column: 6 }));
        assert_eq!(v.as_str(), Some("1"));
    }

    #[test]
    fn duplicate_keys_are_kept() {
        let s = parse_stream("a: 1\na: 2\n");
        assert_eq!(s.documents[0].root.as_ref().unwrap().as_map().unwrap().len(), 2);
    }

    #[test]
    fn billion_laughs_is_refused() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..12 {
            let prev = if i == 0 { "a".to_string() } else { format!("l{}", i - 1) };
            text.push_str(&format!(
                "l{i}: &l{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
        }
        let s = parse_stream(&text);
        let err = s.error.expect("expansion must be refused");
        assert!(err.message.contains("expands to more than"), "{err:?}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = "[".repeat(10_000);
        let s = parse_stream(&text);
        // saphyr-parser's own recursion limit may stop it first; either way it stops.
        let message = s.error.unwrap().message;
        assert!(
            message.contains("nesting deeper") || message.contains("recursion limit"),
            "{message}"
        );
    }

    #[test]
    fn multi_document_stream() {
        let s = parse_stream("a: 1\n---\nb: 2\n---\n");
        assert_eq!(s.documents.len(), 3);
        assert!(s.documents[2].root.is_none());
        assert_eq!(s.documents[1].pos.line, 2);
    }
}
