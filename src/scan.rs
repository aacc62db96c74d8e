//! Byte searches the parsers run on every line, through the `memchr` crate.
//!
//! `str::find`, `contains` and `lines` are portable scalar code: a machine word at a
//! time (4 bytes on wasm32), and the two-way algorithm, set up anew per call, for a
//! substring. `memchr` uses SSE2/AVX2 natively and 16-byte SIMD lanes in the policy
//! component (built with `+simd128`). In the component, these searches were a third of
//! a legacy lint's guest time (issue 16, BENCHMARKS.md).

use memchr::{memchr, memchr_iter, memmem};

/// Byte offset of the first `needle` in `haystack`.
pub(crate) fn find(haystack: &str, needle: &str) -> Option<usize> {
    memmem::find(haystack.as_bytes(), needle.as_bytes())
}

/// Whether `needle` occurs in `haystack`.
pub(crate) fn contains(haystack: &str, needle: &str) -> bool {
    find(haystack, needle).is_some()
}

/// Byte offset of the first `byte`.
pub(crate) fn find_byte(haystack: &str, byte: u8) -> Option<usize> {
    memchr(byte, haystack.as_bytes())
}

/// Byte offset of the first `first` immediately followed by `second`.
pub(crate) fn find_pair(bytes: &[u8], first: u8, second: u8) -> Option<usize> {
    memchr_iter(first, bytes).find(|&at| bytes.get(at + 1) == Some(&second))
}

/// The pieces of `text` between `\n`s, as `text.split('\n')` yields them (a trailing
/// newline gives a last, empty piece).
pub(crate) fn split_newlines(text: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    let mut ends = memchr_iter(b'\n', text.as_bytes()).chain(std::iter::once(text.len()));
    std::iter::from_fn(move || {
        let end = ends.next()?;
        // Both ends sit at a `\n` or the text's end: char boundaries.
        let piece = &text[start..end];
        start = end + 1;
        Some(piece)
    })
}

/// The lines of `text`, as `str::lines` yields them: split at `\n`, a `\r` dropped
/// only before a `\n`, no empty last line after a final newline.
pub(crate) fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    let mut newlines = memchr_iter(b'\n', text.as_bytes());
    std::iter::from_fn(move || match newlines.next() {
        Some(end) => {
            let line = &text[start..end];
            start = end + 1;
            Some(line.strip_suffix('\r').unwrap_or(line))
        }
        None if start < text.len() => {
            let line = &text[start..];
            start = text.len();
            Some(line)
        }
        None => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXTS: &[&str] = &[
        "",
        "\n",
        "\n\n",
        "a",
        "a\n",
        "a\r\n",
        "a\r\nb",
        "a\n\nb\n",
        "\r",
        "\r\n\r\n",
        "key: value # c\nnext:  x\r\n",
        "é: ü\n日本: x",
    ];

    #[test]
    fn lines_and_splits_match_std() {
        for text in TEXTS {
            assert_eq!(
                lines(text).collect::<Vec<_>>(),
                text.lines().collect::<Vec<_>>(),
                "{text:?}"
            );
            assert_eq!(
                split_newlines(text).collect::<Vec<_>>(),
                text.split('\n').collect::<Vec<_>>(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn searches_match_std() {
        for text in TEXTS {
            for needle in [": ", "\n", "a", "x", "日本", ""] {
                assert_eq!(find(text, needle), text.find(needle), "{text:?} {needle:?}");
                assert_eq!(contains(text, needle), text.contains(needle));
            }
            for byte in [b'#', b':', b'\n', b'a'] {
                assert_eq!(find_byte(text, byte), text.find(byte as char), "{text:?} {byte}");
            }
            let bytes = text.as_bytes();
            assert_eq!(
                find_pair(bytes, b':', b' '),
                bytes.windows(2).position(|w| w == b": "),
                "{text:?}"
            );
        }
    }
}
