//! The YAML document tree both readers build — `yaml.rs` from `saphyr-parser`'s events,
//! `yaml_simple.rs` directly for the plain subset: nodes with their positions, the
//! documents of a stream, and the bounds every reader keeps.

/// Deepest nesting of maps and sequences accepted. Real Flink configs and Kubernetes
/// manifests stay far below this; the bound keeps recursion in later passes safe.
pub const MAX_DEPTH: usize = 64;

/// Most nodes a stream may expand to, aliases included (an alias costs the size of what
/// it points to). A 1 MiB ConfigMap has at most a few hundred thousand nodes.
pub const MAX_NODES: usize = 500_000;

/// A 1-based line and column (columns count characters, not bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    /// The 1-based line.
    pub line: u32,
    /// The 1-based column, in characters.
    pub column: u32,
}

impl Pos {
    /// A position from 1-based numbers; values past `u32::MAX` become `u32::MAX`.
    pub fn new(line: usize, column: usize) -> Pos {
        Pos {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
        }
    }
}

/// How a scalar was written; decides how embedded text maps back to positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// Unquoted (`key: value`); also every non-string JSON value.
    Plain,
    /// Single- or double-quoted; also JSON strings.
    Quoted,
    /// A literal block scalar (`|`).
    Literal,
    /// A folded block scalar (`>`).
    Folded,
}

/// What a node holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A scalar, as text (numbers, booleans and nulls included), and how it was written.
    Scalar {
        /// The content, quotes and escapes resolved; a null keeps its spelling (`~`).
        text: String,
        /// How it was written.
        style: Style,
    },
    /// A sequence, in order.
    Seq(Vec<Node>),
    /// A map's entries in the order read, repeated keys kept.
    Map(Vec<(Node, Node)>),
}

/// One node; `pos` is `None` for trees built from JSON objects (admission requests).
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// What the node holds.
    pub value: Value,
    /// Where the node starts, when it comes from text.
    pub pos: Option<Pos>,
}

impl Node {
    /// A plain scalar with the given text.
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

    /// The entries of a map, in input order.
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The items of a sequence.
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

    /// The value under `key` in a map (the last one if the key repeats).
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    /// Follows a path of map keys.
    pub fn path(&self, keys: &[&str]) -> Option<&Node> {
        keys.iter().try_fold(self, |node, key| node.get(key))
    }

    /// The scalar text at a path of map keys; `None` when it is missing, null or not a scalar.
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
    /// The document's top node.
    pub root: Option<Node>,
    /// Where the document starts (its `---` or first node).
    pub pos: Pos,
}

/// Why a stream could not be read (further), with the place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// What went wrong, in one sentence.
    pub message: String,
    /// Where reading stopped.
    pub pos: Pos,
}

/// The documents read before any error, and the error that stopped reading.
#[derive(Debug, PartialEq)]
pub struct Stream {
    /// The documents read, in order, before any error.
    pub documents: Vec<Document>,
    /// The error that stopped reading, if any.
    pub error: Option<SyntaxError>,
}
