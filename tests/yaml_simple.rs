//! The YAML fast path must build exactly the tree the general parser builds, whenever it
//! answers at all. Compared on the corpus and on systematic mutations of it (the
//! `yaml_simple` fuzz target does the same on arbitrary input).

use std::path::Path;

use flink_ha_policy::yaml::{parse_stream_full, parse_stream_simple};

#[path = "support/corpus.rs"]
mod corpus;

/// Where the fast path answers, its stream must equal the general parser's. (Where it
/// does not, `parse_stream` is the general parser itself.) `Ok(true)` if it answered.
fn same(text: &str) -> Result<bool, String> {
    let Some(fast) = parse_stream_simple(text) else {
        return Ok(false);
    };
    let full = parse_stream_full(text);
    if fast == full {
        Ok(true)
    } else {
        Err(format!("input {text:?}\nfast: {fast:?}\nfull: {full:?}"))
    }
}

fn corpus() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    ["tests/fixtures", "samples", "benches/inputs"]
        .iter()
        .flat_map(|dir| corpus::files_under(&root.join(dir)))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| p.metadata().is_ok_and(|m| m.len() < 64 * 1024))
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect()
}

#[test]
fn fast_path_matches_on_the_corpus() {
    let texts = corpus();
    assert!(texts.len() > 40);
    let mut answered = 0;
    for t in &texts {
        answered += usize::from(same(t).unwrap());
    }
    // The fast path must actually serve the corpus' plain configs, or it is dead weight.
    assert!(
        answered >= 10,
        "the fast path answered for only {answered} corpus files"
    );
}

#[test]
fn fast_path_matches_on_mutations() {
    const INSERTS: &[&str] = &[
        ":", " ", ": ", "#", " #", "-", "- ", "'", "\"", "[", "{", "&a ", "*a", "|", ">", "?", "\n", "\n  ", "  ", ",",
        "!", "%", "@", "~", "\\", "a", "...",
    ];
    let (mut checked, mut answered) = (0, 0);
    for t in corpus().iter().filter(|t| t.len() < 2048) {
        let lines: Vec<&str> = t.split('\n').collect();
        for (i, line) in lines.iter().enumerate() {
            // Drop the line; indent it; dedent it.
            let mut variants = vec![
                lines
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, l)| *l)
                    .collect::<Vec<_>>()
                    .join("\n"),
            ];
            for (prefix, strip) in [("  ", 0), (" ", 0), ("", 1), ("", 2)] {
                let changed = format!("{prefix}{}", line.get(strip.min(line.len())..).unwrap_or(""));
                let mut ls = lines.clone();
                ls[i] = &changed;
                variants.push(ls.join("\n"));
            }
            // Insert indicator characters at a few places in the line.
            for ins in INSERTS {
                for at in [
                    0,
                    line.len() / 2,
                    line.find(':').map_or(0, |c| c + 1),
                    line.find(": ").map_or(0, |c| c + 2),
                    line.len(),
                ] {
                    if !line.is_char_boundary(at) {
                        continue;
                    }
                    let changed = format!("{}{ins}{}", &line[..at], &line[at..]);
                    let mut ls = lines.clone();
                    ls[i] = &changed;
                    variants.push(ls.join("\n"));
                }
            }
            for v in variants {
                answered += usize::from(same(&v).unwrap());
                checked += 1;
            }
        }
    }
    assert!(checked > 5_000, "{checked}");
    // Mutations the fast path accepts are the ones that test it.
    assert!(
        answered > 1_000,
        "the fast path answered for only {answered} of {checked} mutations"
    );
    eprintln!("{checked} mutations, {answered} answered by the fast path and compared");
}

/// Found by the `yaml_simple` fuzz target: YAML limits implicit keys to 1024
/// characters, so a longer key is a syntax error, never a map entry.
#[test]
fn a_key_longer_than_yaml_allows_is_not_read_as_a_key() {
    for len in [999, 1000, 1001, 1023, 1024, 1025, 1100] {
        let text = format!("a: 1\n{}: 2\n", "k".repeat(len));
        same(&text).unwrap();
    }
    let text = format!("{}: 2\n", "k".repeat(1100));
    assert!(flink_ha_policy::yaml::parse_stream(&text).error.is_some());
}
