//! A Flink configuration as Flink sees it: ordered key/value entries with positions,
//! read from a legacy `flink-conf.yaml` (Flink's line parser) or a standard
//! `config.yaml` (YAML 1.2, nested maps flattened to dotted keys).

use crate::finding::Finding;
use crate::options::{MASK, OptionSpec, display_value, is_sensitive};
use crate::rules::RuleId;
use crate::yaml::{Node, Pos, Value};

/// One `key: value` as written.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The key; in a `config.yaml`, nested maps flattened to a dotted key.
    pub key: String,
    /// The value as Flink reads it; in a `config.yaml`, a list in flow form (`[a, b]`).
    pub value: String,
    /// Where the key is, if known.
    pub key_pos: Option<Pos>,
    /// Where the value is, if known.
    pub value_pos: Option<Pos>,
}

/// Entries in input order; for a repeated key the last one is in force.
#[derive(Clone, Debug, Default)]
pub struct FlinkConfig {
    /// Every entry, in input order (repeated keys included).
    pub entries: Vec<Entry>,
    /// Entry indices sorted by (key, input order): lookups by binary search, no hashing
    /// (a config has tens of keys; sorting beats a hash map's setup and hashing here).
    index: Vec<usize>,
}

impl FlinkConfig {
    /// Appends an entry; a later entry for the same key overrides earlier ones.
    pub fn push(&mut self, entry: Entry) {
        let at = self
            .index
            .partition_point(|&i| self.entries[i].key.as_str() <= entry.key.as_str());
        self.index.insert(at, self.entries.len());
        self.entries.push(entry);
    }

    /// The entry in force for exactly this key.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        let end = self.index.partition_point(|&i| self.entries[i].key.as_str() <= key);
        let last = &self.entries[*self.index.get(end.checked_sub(1)?)?];
        (last.key == key).then_some(last)
    }

    /// The entry in force for an option: its current key, else the first deprecated key
    /// that is set (Flink's precedence).
    pub fn effective(&self, option: &OptionSpec) -> Option<&Entry> {
        self.get(option.key)
            .or_else(|| option.deprecated.iter().find_map(|k| self.get(k)))
    }

    /// The value in force for an option, falling back to its default.
    pub fn value_or_default<'a>(&'a self, option: &'a OptionSpec) -> Option<&'a str> {
        self.effective(option).map(|e| e.value.as_str()).or(option.default)
    }

    /// Whether the configuration has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Reads a legacy `flink-conf.yaml` exactly as Flink's `GlobalConfiguration` does: per
/// line, cut from the first `#`, split at the first `": "`, trim both sides, skip empty
/// keys or values, keep quotes, last occurrence wins. Reports the lines Flink skips
/// (HA003) and the values it changes (HA004).
pub fn parse_legacy(text: &str) -> (FlinkConfig, Vec<Finding>) {
    let mut config = FlinkConfig::default();
    let mut findings = Vec::new();
    // The key of the last `parent:` line (YAML nesting that Flink ignores), to explain
    // the indented lines under it.
    let mut parent: Option<String> = None;
    // The sensitive key whose value the following lines without ": " may continue (a
    // PEM body pasted under `...secret-key: -----BEGIN ...`), and whether a PEM block is
    // open: such lines are masked in messages, as the value itself is.
    let mut secret_key: Option<String> = None;
    let mut in_pem = false;
    for (i, line) in crate::scan::lines(text).enumerate() {
        let line_no = i + 1;
        let (conf_part, comment) = match crate::scan::find_byte(line, b'#') {
            Some(at) => (&line[..at], Some(&line[at + 1..])),
            None => (line, None),
        };
        // Java's String.trim(): strips every char up to and including ' '.
        let conf = conf_part.trim_matches(|c: char| c <= ' ');
        if conf.is_empty() {
            continue;
        }
        let lead = char_len(&conf_part[..conf_part.len() - conf_part.trim_start_matches(|c: char| c <= ' ').len()]);
        let line_pos = Pos::new(line_no, lead + 1);
        let pem_line = conf.contains("-----BEGIN") || conf.contains("-----END");
        let Some(split) = crate::scan::find_pair(conf.as_bytes(), b':', b' ') else {
            let pem_ends = conf.contains("-----END");
            if pem_line || in_pem || secret_key.is_some() {
                in_pem = (in_pem || conf.contains("-----BEGIN")) && !pem_ends;
                let of = secret_key
                    .as_deref()
                    .map(|k| format!(" (it may continue the value of `{k}`)"))
                    .unwrap_or_default();
                let mut finding = Finding::new(
                    RuleId::HA003,
                    format!("`{MASK}` has no \": \" (colon and space){of}; Flink skips the line, and a secret is not shown"),
                    "flink-conf.yaml values are one line each: put the whole value on the key's line, or better, in a Secret read through an environment variable",
                )
                .at(Some(line_pos));
                if let Some(key) = &secret_key {
                    finding = finding.key(key.as_str());
                }
                findings.push(finding);
                continue;
            }
            let shown = match conf.split_once(':') {
                Some((k, v)) if !v.trim().is_empty() => {
                    format!("{k}:{}", display_value(k, v))
                }
                _ => display_value(conf, conf),
            };
            parent = conf.strip_suffix(':').map(|p| p.trim().to_string());
            secret_key = parent.clone().filter(|p| is_sensitive(p));
            let (message, hint) = if conf.ends_with(':') {
                (
                    format!(
                        "`{shown}` has no value on its line; Flink skips it (flink-conf.yaml is not YAML: nesting is ignored)"
                    ),
                    "write the full dotted key and its value on one line, e.g. `high-availability.type: kubernetes`"
                        .to_string(),
                )
            } else {
                (
                    format!("`{shown}` has no \": \" (colon and space); Flink skips the line"),
                    "separate key and value with a colon and a space: `key: value`".to_string(),
                )
            };
            findings.push(
                Finding::new(RuleId::HA003, message, hint)
                    .key(conf.split(':').next().unwrap_or(conf).trim())
                    .at(Some(line_pos)),
            );
            continue;
        };
        if lead == 0 {
            parent = None;
        } else if let Some(p) = &parent {
            let key = conf[..split].trim_matches(|c: char| c <= ' ');
            findings.push(
                Finding::new(
                    RuleId::HA003,
                    format!(
                        "indented under `{p}:`, but Flink ignores nesting: this line sets `{key}`, not `{p}.{key}`"
                    ),
                    format!("write `{p}.{key}: ...` on one line, without indentation"),
                )
                .key(key)
                .at(Some(line_pos)),
            );
        }
        let raw_key = &conf[..split];
        let raw_value = &conf[split + 2..];
        let key = raw_key.trim_matches(|c: char| c <= ' ');
        let value = raw_value.trim_matches(|c: char| c <= ' ');
        if is_sensitive(key) {
            secret_key = Some(key.to_string());
            in_pem = value.contains("-----BEGIN") && !value.contains("-----END");
        } else if lead == 0 {
            secret_key = None;
            in_pem = pem_line && value.contains("-----BEGIN") && !value.contains("-----END");
        }
        if key.is_empty() || value.is_empty() {
            let what = if key.is_empty() {
                "an empty key"
            } else {
                "an empty value"
            };
            findings.push(
                Finding::new(
                    RuleId::HA003,
                    format!("line has {what}; Flink skips it"),
                    "give the line both a key and a value, or remove it",
                )
                .key(key)
                .at(Some(line_pos)),
            );
            continue;
        }
        let value_offset = conf_part.len() - conf_part.trim_start_matches(|c: char| c <= ' ').len()
            + split
            + 2
            + (raw_value.len() - raw_value.trim_start_matches(|c: char| c <= ' ').len());
        let value_pos = Pos::new(line_no, char_len(&line[..value_offset]) + 1);

        if let Some(comment) = comment {
            // A `#` glued to the value (no blank before it) or inside an open quote reads
            // as part of the value to anyone who knows YAML; Flink cuts it anyway.
            let glued = conf_part.ends_with(|c: char| c > ' ');
            let open_quote = value.starts_with(['"', '\'']) && !value[1..].contains(&value[..1]);
            if glued || open_quote {
                let cut = display_value(key, &format!("#{comment}"));
                findings.push(
                    Finding::new(
                        RuleId::HA004,
                        format!(
                            "Flink cuts `{key}` at the `#`: the value becomes `{}` and `{cut}` is dropped",
                            display_value(key, value)
                        ),
                        "flink-conf.yaml has no escaping for `#`; move to config.yaml (Flink 1.19+), where a quoted value may contain `#`",
                    )
                    .key(key)
                    .at(Some(value_pos)),
                );
            }
        }
        if value.len() >= 2
            && ((value.starts_with('"') && value.ends_with('"')) || (value.starts_with('\'') && value.ends_with('\'')))
        {
            findings.push(
                Finding::new(
                    RuleId::HA004,
                    format!(
                        "the quotes are part of the value of `{key}`: Flink reads `{}`, quotes included",
                        display_value(key, value)
                    ),
                    format!(
                        "remove the quotes: `{key}: {}`",
                        display_value(key, &value[1..value.len() - 1])
                    ),
                )
                .key(key)
                .at(Some(value_pos)),
            );
        }
        config.push(Entry {
            key: key.to_string(),
            value: value.to_string(),
            key_pos: Some(line_pos),
            value_pos: Some(value_pos),
        });
    }
    (config, findings)
}

fn char_len(s: &str) -> usize {
    s.chars().count()
}

/// Reads a standard `config.yaml` document (or a nested `flinkConfiguration`): nested
/// maps flatten to dotted keys, sequences and maps below options become flow strings,
/// null values are unset. Duplicate keys are HA002; a root that is not a map is HA001.
pub fn parse_standard(root: &Node) -> (FlinkConfig, Vec<Finding>) {
    let mut config = FlinkConfig::default();
    let mut findings = Vec::new();
    if root.is_null() {
        return (config, findings);
    }
    if root.as_map().is_none() {
        findings.push(
            Finding::new(
                RuleId::HA001,
                "a Flink configuration must be a map of options, not a list or a single value",
                "write one `key: value` per line (nested maps are allowed)",
            )
            .at(root.pos),
        );
        return (config, findings);
    }
    let mut defs = Vec::new();
    let mut key = String::new();
    flatten(root, &mut key, NO_PARENT, &mut config, &mut findings, &mut defs);
    report_duplicates(&defs, &config, &mut findings);
    (config, findings)
}

const NO_PARENT: usize = usize::MAX;

/// One key definition met while flattening: an option or a nested map.
struct Def {
    key: DefKey,
    pos: Option<Pos>,
    /// Index in `defs` of the enclosing map's definition.
    parent: usize,
}

/// Where a definition's dotted key is kept: an option's is its entry's key (one
/// allocation per option, which matters at tens of microseconds per lint).
enum DefKey {
    Option(usize),
    Map(String),
}

impl Def {
    fn key<'a>(&'a self, config: &'a FlinkConfig) -> &'a str {
        match &self.key {
            DefKey::Option(entry) => &config.entries[*entry].key,
            DefKey::Map(key) => key,
        }
    }

    fn is_map(&self) -> bool {
        matches!(self.key, DefKey::Map(_))
    }
}

/// Flattens `map` under the dotted prefix in `key` (a buffer shared by the whole walk:
/// each level appends its segment and truncates it again).
fn flatten(
    map: &Node,
    key: &mut String,
    parent: usize,
    config: &mut FlinkConfig,
    findings: &mut Vec<Finding>,
    defs: &mut Vec<Def>,
) {
    let Some(entries) = map.as_map() else { return };
    let prefix_len = key.len();
    for (k, v) in entries {
        let Some(raw) = k.as_str() else {
            findings.push(
                Finding::new(
                    RuleId::HA001,
                    "a key is a list or a map; option keys must be plain text",
                    "use a dotted option name as the key",
                )
                .at(k.pos),
            );
            continue;
        };
        let is_map = matches!(&v.value, Value::Map(inner) if !inner.is_empty());
        if !is_map && v.is_null() {
            continue;
        }
        key.truncate(prefix_len);
        if prefix_len > 0 {
            key.push('.');
        }
        key.push_str(raw);
        if is_map {
            defs.push(Def {
                key: DefKey::Map(key.clone()),
                pos: k.pos,
                parent,
            });
            flatten(v, key, defs.len() - 1, config, findings, defs);
        } else {
            defs.push(Def {
                key: DefKey::Option(config.entries.len()),
                pos: k.pos,
                parent,
            });
            config.push(Entry {
                key: key.clone(),
                value: v.to_flow_string(),
                key_pos: k.pos,
                value_pos: v.pos,
            });
        }
    }
    key.truncate(prefix_len);
}

/// HA002: the same dotted key defined twice, whether as a YAML duplicate in one map or
/// by two paths (`a.b: 1` and `a: {b: 2}`, or a value next to a nested map of that name).
/// Two nested maps of one name reached by different paths merge and are fine. Keys
/// inside a duplicated map are not reported again.
fn report_duplicates(defs: &[Def], config: &FlinkConfig, findings: &mut Vec<Finding>) {
    let key = |i: usize| defs[i].key(config);
    // Each key's first definition: borrowed keys, no sorting, and foldhash rather than
    // SipHash (a third of the cost of reading a config). Its seed is random per process,
    // so crafted collisions cannot be planned.
    let mut first_of: foldhash::HashMap<&str, usize> =
        foldhash::HashMap::with_capacity_and_hasher(defs.len(), Default::default());
    // For each later definition of a key: its first one, and how the two differ (`None`:
    // a plain YAML duplicate in one map).
    let mut dup: Vec<Option<(usize, Option<&'static str>)>> = vec![None; defs.len()];
    for later in 0..defs.len() {
        let first = *first_of.entry(key(later)).or_insert(later);
        if first == later {
            continue;
        }
        let (f, l) = (&defs[first], &defs[later]);
        let how = if f.parent == l.parent {
            None
        } else if f.is_map() && l.is_map() {
            continue;
        } else if f.is_map() != l.is_map() {
            Some("as a value and as a nested map")
        } else {
            Some("once dotted and once nested")
        };
        dup[later] = Some((first, how));
    }
    for (i, d) in dup.iter().enumerate() {
        let Some((first, how)) = *d else { continue };
        let mut ancestor = defs[i].parent;
        let mut inside_duplicate = false;
        while ancestor != NO_PARENT {
            inside_duplicate |= dup[ancestor].is_some();
            ancestor = defs[ancestor].parent;
        }
        if !inside_duplicate {
            findings.push(duplicate(key(i), defs[first].pos, defs[i].pos, how));
        }
    }
}

fn duplicate(key: &str, first: Option<Pos>, at: Option<Pos>, how: Option<&str>) -> Finding {
    let mut details: Vec<String> = how.map(str::to_string).into_iter().collect();
    if let Some(p) = first {
        details.push(format!("first at line {}", p.line));
    }
    let details = if details.is_empty() {
        String::new()
    } else {
        format!(" ({})", details.join("; "))
    };
    let hint = if key == "high-availability" {
        "keep one definition: the nested `high-availability:` map, with `type: kubernetes` inside it"
    } else {
        "keep one definition of the key"
    };
    Finding::new(
        RuleId::HA002,
        format!("`{key}` is defined twice{details}; Flink refuses to start on a duplicate key"),
        hint,
    )
    .key(key)
    .at(at)
}

/// Which of Flink's two configuration files a text is: they are read differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigFile {
    /// Legacy `flink-conf.yaml`, read line by line by Flink's own parser.
    FlinkConf,
    /// `config.yaml`, standard YAML 1.2 (Flink 2.x).
    ConfigYaml,
}

/// An input that cannot be read (HA001), at `pos`.
pub(crate) fn input_error(message: String, hint: &str, pos: Option<Pos>) -> Finding {
    Finding::new(RuleId::HA001, message, hint).at(pos)
}

pub(crate) fn syntax_error(e: &crate::yaml::SyntaxError) -> Finding {
    input_error(
        format!("cannot read the YAML: {}", e.message),
        "fix the YAML at this position; nothing after it was linted",
        Some(e.pos),
    )
}

/// Reads a Flink configuration text into the options Flink would see, with the
/// findings of reading it (HA001–HA004). `None` when nothing could be read: a syntax
/// error, or a document that is not a map. The HA rules are not applied here; the HA
/// runtime uses this to run with exactly the configuration the linter judged.
pub fn read_config_text(text: &str, file: ConfigFile) -> (Option<FlinkConfig>, Vec<Finding>) {
    if file == ConfigFile::FlinkConf {
        let (config, findings) = parse_legacy(text);
        return (Some(config), findings);
    }
    let mut findings = Vec::new();
    let stream = crate::yaml::parse_stream(text);
    if let Some(e) = &stream.error {
        findings.push(syntax_error(e));
        return (None, findings);
    }
    let docs: Vec<&crate::yaml::Document> = stream.documents.iter().filter(|d| d.root.is_some()).collect();
    if docs.len() > 1 {
        findings.push(input_error(
            format!(
                "config.yaml holds {} YAML documents; Flink reads exactly one",
                docs.len()
            ),
            "remove the `---` separators and keep one document",
            Some(docs[1].pos),
        ));
    }
    let Some(root) = docs.first().and_then(|d| d.root.as_ref()) else {
        return (None, findings);
    };
    let (config, parse_findings) = parse_standard(root);
    let unreadable = parse_findings.iter().any(|f| f.rule == RuleId::HA001) && config.is_empty();
    findings.extend(parse_findings);
    ((!unreadable).then_some(config), findings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse_stream;

    #[test]
    fn continuation_lines_of_a_sensitive_value_are_masked() {
        let body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj";
        let text = format!(
            "s3.secret-key: -----BEGIN PRIVATE KEY-----\n  {body}\n  c2VjcmV0LXRhaWw=\n-----END PRIVATE KEY-----\nrest.bind-port: 8081\n"
        );
        let (_, findings) = parse_legacy(&text);
        assert_eq!(findings.len(), 3, "{findings:?}");
        for finding in &findings {
            let shown = format!("{} {} {:?}", finding.message, finding.hint, finding.key);
            for secret in [body, "c2VjcmV0LXRhaWw", "PRIVATE KEY"] {
                assert!(!shown.contains(secret), "{secret} shown: {shown}");
            }
            assert!(finding.message.contains(MASK), "{}", finding.message);
        }
        // A PEM block is masked under any key, and a line after the secret is not.
        let (_, findings) =
            parse_legacy("a.cert: -----BEGIN PRIVATE KEY-----\nAAAABBBB\n-----END PRIVATE KEY-----\nlonely-line\n");
        let messages: Vec<&str> = findings.iter().map(|f| f.message.as_str()).collect();
        assert_eq!(messages.len(), 3, "{messages:?}");
        assert!(
            !messages[0].contains("AAAABBBB") && !messages[1].contains("PRIVATE"),
            "{messages:?}"
        );
        assert!(messages[2].contains("lonely-line"), "{messages:?}");
    }

    #[test]
    fn legacy_semantics() {
        let (c, f) = parse_legacy("a: 1\nb:2\n# c: 3\nd: \"x\"\ne: y#z\nf: 1 # ok\na: 4\n  g: nested: x\n");
        assert_eq!(c.get("a").unwrap().value, "4");
        assert_eq!(c.get("d").unwrap().value, "\"x\"");
        assert_eq!(c.get("e").unwrap().value, "y");
        assert_eq!(c.get("f").unwrap().value, "1");
        assert_eq!(c.get("g").unwrap().value, "nested: x");
        assert!(c.get("b").is_none());
        let rules: Vec<_> = f.iter().map(|f| (f.rule, f.line.unwrap())).collect();
        assert_eq!(rules, vec![(RuleId::HA003, 2), (RuleId::HA004, 4), (RuleId::HA004, 5)]);
    }

    #[test]
    fn standard_flattens_and_finds_duplicates() {
        let s = parse_stream("high-availability: kubernetes\nhigh-availability:\n  type: kubernetes\n");
        let (_, f) = parse_standard(s.documents[0].root.as_ref().unwrap());
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].rule, RuleId::HA002);
        assert_eq!(f[0].line, Some(2));

        let s = parse_stream("a:\n  b: 1\n  c: [x, y]\na.d: 2\n");
        let (c, f) = parse_standard(s.documents[0].root.as_ref().unwrap());
        assert!(f.is_empty());
        assert_eq!(c.get("a.c").unwrap().value, "[x, y]");
        assert_eq!(c.get("a.b").unwrap().value_pos, Some(Pos { line: 2, column: 6 }));
    }
}
