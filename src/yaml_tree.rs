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
