//! The parts of a `high-availability.storageDir` that decide where HA data lands.
//!
//! Flink turns the string into a `java.net.URI` (RFC 3986 generic syntax); only the
//! scheme, the authority and whether the path is absolute matter here, so this is a
//! split, not a full URI parser (and not WHATWG URL semantics, which treat `file:` and
//! unknown schemes differently from Java).

/// A storage URI cut into scheme, authority and path; the parts borrow from the text.
#[derive(Debug, PartialEq, Eq)]
pub struct StorageUri<'a> {
    /// The scheme before the first `:` (`s3`), `None` for a plain path or a Windows drive.
    pub scheme: Option<&'a str>,
    /// `Some("")` for `s3:///path`, `None` when there is no `//` at all.
    pub authority: Option<&'a str>,
    /// The rest after the authority (or the scheme): the path, with any query and fragment.
    pub path: &'a str,
}

/// Splits a storage URI where `java.net.URI` would, without checking the parts.
pub fn split(text: &str) -> StorageUri<'_> {
    let scheme_end = text.find(':').filter(|&i| {
        let s = &text[..i];
        // One letter before the colon is a Windows drive, not a scheme.
        s.len() > 1
            && s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    let (scheme, rest) = match scheme_end {
        Some(i) => (Some(&text[..i]), &text[i + 1..]),
        None => (None, text),
    };
    match rest.strip_prefix("//") {
        Some(after) => {
            let end = after.find(['/', '?', '#']).unwrap_or(after.len());
            StorageUri {
                scheme,
                authority: Some(&after[..end]),
                path: &after[end..],
            }
        }
        None => StorageUri {
            scheme,
            authority: None,
            path: rest,
        },
    }
}

/// Schemes of object stores whose authority is the bucket.
pub const BUCKET_SCHEMES: &[&str] = &["s3", "s3a", "s3n", "s3p", "gs", "oss", "cos", "cosn", "obs"];
/// Azure schemes whose authority is `container@account`.
pub const AZURE_SCHEMES: &[&str] = &["abfs", "abfss", "wasb", "wasbs"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits() {
        assert_eq!(
            split("s3://bucket/flink"),
            StorageUri {
                scheme: Some("s3"),
                authority: Some("bucket"),
                path: "/flink"
            }
        );
        assert_eq!(
            split("s3:///flink"),
            StorageUri {
                scheme: Some("s3"),
                authority: Some(""),
                path: "/flink"
            }
        );
        assert_eq!(
            split("/flink/ha"),
            StorageUri {
                scheme: None,
                authority: None,
                path: "/flink/ha"
            }
        );
        assert_eq!(split("file:/x").authority, None);
        assert_eq!(split("C:/x").scheme, None);
    }
}
