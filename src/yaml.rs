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

pub use crate::yaml_tree::{Document, MAX_DEPTH, MAX_NODES, Node, Pos, Stream, Style, SyntaxError, Value};

/// Where a span starts, as a 1-based line and column.
fn pos_of(span: &Span) -> Pos {
    Pos::new(span.start.line(), span.start.col() + 1)
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
                        pos: pos_of(&span),
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
        let pos = pos_of(span);
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
