//! Opening `high-availability.storageDir` as an object store: the URI's scheme picks
//! the `object_store` backend, and the Flink options that configure Flink's own file
//! system plugins (`s3.endpoint`, `s3.path.style.access`, `s3.access-key`, …) configure
//! it the same way, so one `config.yaml` serves Flink and this runtime.
//!
//! | storageDir | backend | cargo feature | configured by |
//! |---|---|---|---|
//! | `file:///mnt/ha` | local file system | always | — |
//! | `s3://bucket/path`, `s3a://…` | S3 and S3-compatible servers | `s3` | `s3.*`, `s3a.*`, `fs.s3a.*`, then `AWS_*` variables |
//! | `gs://bucket/path` | Google Cloud Storage | `gcs` | `gs.*`, `fs.gs.*`, then `GOOGLE_*` variables |
//! | `abfs[s]://container@account.dfs.core.windows.net/path`, `az://…` | Azure Blob Storage / ADLS Gen2 | `azure` | `fs.azure.account.key.<account>.…`, then `AZURE_*` variables |
//!
//! Options in the Flink configuration win over environment variables. Payloads are
//! written create-only (`If-None-Match: *` on S3 and Azure, a generation precondition on
//! GCS), which every one of these services honours.

use std::collections::BTreeMap;
use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreScheme};

use crate::error::{Error, Result};

/// The prefixes of the Flink options that configure a storageDir's file system. Flink's
/// S3 plugins read `s3.`, `s3a.` and `fs.s3a.` alike; the GCS plugin `gs.` and `fs.gs.`.
const STORAGE_PREFIXES: [&str; 6] = ["s3.", "s3a.", "fs.s3a.", "gs.", "fs.gs.", "fs.azure."];

/// The storage options of a Flink configuration. They hold credentials, so `Debug`
/// shows the keys and never the values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct StorageOptions(BTreeMap<String, String>);

impl std::fmt::Debug for StorageOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl StorageOptions {
    /// Keeps the entries whose keys configure a file system; a later entry wins, as in
    /// Flink.
    pub fn from_entries<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> StorageOptions {
        let options = entries
            .into_iter()
            .filter(|(key, _)| STORAGE_PREFIXES.iter().any(|prefix| key.starts_with(prefix)))
            .map(|(key, value)| (key.to_string(), value.trim().to_string()))
            .collect();
        StorageOptions(options)
    }

    /// Whether no file-system option was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    #[cfg(feature = "s3")]
    /// The option's value under any of Flink's spellings of an S3 key (`suffixes` after
    /// `s3.`, `s3a.` or `fs.s3a.`); the `fs.s3a.` form, which Hadoop reads last, wins.
    fn s3(&self, suffixes: &[&str]) -> Option<&str> {
        ["fs.s3a.", "s3a.", "s3."].iter().find_map(|prefix| {
            suffixes
                .iter()
                .find_map(|suffix| self.0.get(&format!("{prefix}{suffix}")))
                .map(String::as_str)
        })
    }

    #[cfg(any(feature = "gcs", feature = "azure"))]
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
}

/// The store and the path inside it that `storage_dir` names.
pub fn open(storage_dir: &str, options: &StorageOptions) -> Result<(Arc<dyn ObjectStore>, Path)> {
    let url = url::Url::parse(storage_dir)
        .map_err(|e| Error::Config(format!("storageDir `{storage_dir}` is not a URI: {e}")))?;
    let unsupported = |what: &str| Error::Config(format!("storageDir `{storage_dir}`: {what}"));
    let (scheme, path) = ObjectStoreScheme::parse(&url).map_err(|_| {
        unsupported("no object store for this scheme (file://, s3://, s3a://, gs://, abfs://, abfss:// and az:// are)")
    })?;
    let store: Arc<dyn ObjectStore> = match scheme {
        // Rooted at `/`: the path above is absolute.
        ObjectStoreScheme::Local => Arc::new(object_store::local::LocalFileSystem::new()),
        ObjectStoreScheme::AmazonS3 => s3(&url, options).map_err(|e| unsupported(&e))?,
        ObjectStoreScheme::GoogleCloudStorage => gcs(&url, options).map_err(|e| unsupported(&e))?,
        ObjectStoreScheme::MicrosoftAzure => azure(&url, options).map_err(|e| unsupported(&e))?,
        ObjectStoreScheme::Memory => {
            return Err(unsupported(
                "memory:// keeps nothing across a restart; HA needs durable storage",
            ));
        }
        _ => {
            return Err(unsupported(
                "plain HTTP(S) servers cannot write create-only; use the object store's own scheme",
            ));
        }
    };
    Ok((store, path))
}

/// The URI of the store's root that `storage_dir` names, without its path
/// (`s3://bucket`, `file://`, `abfss://container@account.dfs.core.windows.net`): a
/// payload's URI is this, `/`, and its object path. Pointers carry full URIs, so a
/// JobManager configured with another bucket cannot mistake them for its own.
pub fn store_uri(storage_dir: &str) -> Result<String> {
    let url = url::Url::parse(storage_dir)
        .map_err(|e| Error::Config(format!("storageDir `{storage_dir}` is not a URI: {e}")))?;
    // `file:///x` has an empty authority; slicing the URL would lose its `//`.
    let authority = &url[url::Position::BeforeUsername..url::Position::BeforePath];
    Ok(format!("{}://{authority}", url.scheme()))
}

#[cfg(test)]
mod store_uri_tests {
    #[test]
    fn the_store_uri_is_scheme_and_authority() {
        for (dir, uri) in [
            ("file:///mnt/ha", "file://"),
            ("s3://bucket/flink/recovery", "s3://bucket"),
            ("gs://bucket", "gs://bucket"),
            (
                "abfss://container@account.dfs.core.windows.net/ha",
                "abfss://container@account.dfs.core.windows.net",
            ),
        ] {
            assert_eq!(super::store_uri(dir).ok().as_deref(), Some(uri), "{dir}");
        }
    }
}

/// A backend this build left out: say which feature brings it.
#[cfg(not(all(feature = "s3", feature = "gcs", feature = "azure")))]
fn not_built(feature: &str) -> String {
    format!("this build has no `{feature}` backend (build flink-ha-runtime with the `{feature}` feature)")
}

/// The HTTP client of the cloud backends needs a rustls crypto provider. The rest of
/// this project (kube, the webhook) uses ring; install it as the process default unless
/// the application chose one already.
#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Another thread may win the race; either way a provider is installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

#[cfg(feature = "s3")]
fn s3(url: &url::Url, options: &StorageOptions) -> std::result::Result<Arc<dyn ObjectStore>, String> {
    use object_store::aws::AmazonS3Builder;
    ensure_crypto_provider();
    let mut builder = AmazonS3Builder::from_env().with_url(url.as_str());
    if let Some(endpoint) = options.s3(&["endpoint"]) {
        // Hadoop takes a bare host name and means HTTPS by it.
        let endpoint = if endpoint.contains("://") {
            endpoint.to_string()
        } else {
            format!("https://{endpoint}")
        };
        builder = builder
            .with_allow_http(endpoint.starts_with("http://"))
            .with_endpoint(endpoint);
    }
    if let Some(path_style) = options.s3(&["path.style.access", "path-style-access"]) {
        builder = builder.with_virtual_hosted_style_request(!path_style.eq_ignore_ascii_case("true"));
    }
    if let Some(region) = options.s3(&["endpoint.region", "region"]) {
        builder = builder.with_region(region);
    }
    if let Some(key) = options.s3(&["access.key", "access-key"]) {
        builder = builder.with_access_key_id(key);
    }
    if let Some(secret) = options.s3(&["secret.key", "secret-key"]) {
        builder = builder.with_secret_access_key(secret);
    }
    if let Some(token) = options.s3(&["session.token", "session-token"]) {
        builder = builder.with_token(token);
    }
    let store = builder.build().map_err(|e| e.to_string())?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "s3"))]
fn s3(_: &url::Url, _: &StorageOptions) -> std::result::Result<Arc<dyn ObjectStore>, String> {
    Err(not_built("s3"))
}

#[cfg(feature = "gcs")]
fn gcs(url: &url::Url, options: &StorageOptions) -> std::result::Result<Arc<dyn ObjectStore>, String> {
    use object_store::gcp::GoogleCloudStorageBuilder;
    ensure_crypto_provider();
    let mut builder = GoogleCloudStorageBuilder::from_env().with_url(url.as_str());
    let key_file = [
        "fs.gs.auth.service.account.json.keyfile",
        "gs.auth.service.account.json.keyfile",
    ]
    .iter()
    .find_map(|key| options.get(key));
    if let Some(path) = key_file {
        builder = builder.with_service_account_path(path);
    }
    let store = builder.build().map_err(|e| e.to_string())?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "gcs"))]
fn gcs(_: &url::Url, _: &StorageOptions) -> std::result::Result<Arc<dyn ObjectStore>, String> {
    Err(not_built("gcs"))
}

#[cfg(feature = "azure")]
fn azure(url: &url::Url, options: &StorageOptions) -> std::result::Result<Arc<dyn ObjectStore>, String> {
    use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
    ensure_crypto_provider();
    let mut builder = MicrosoftAzureBuilder::from_env().with_url(url.as_str());
    // Flink (through Hadoop's ABFS) keys the account key by the account's host name.
    if let Some(account) = builder.get_config_value(&AzureConfigKey::AccountName) {
        let key = ["dfs", "blob"]
            .iter()
            .find_map(|service| options.get(&format!("fs.azure.account.key.{account}.{service}.core.windows.net")));
        if let Some(key) = key {
            builder = builder.with_access_key(key);
        }
    }
    let store = builder.build().map_err(|e| e.to_string())?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "azure"))]
fn azure(_: &url::Url, _: &StorageOptions) -> std::result::Result<Arc<dyn ObjectStore>, String> {
    Err(not_built("azure"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> StorageOptions {
        StorageOptions::from_entries(pairs.iter().copied())
    }

    #[test]
    fn keeps_only_file_system_options_and_never_shows_their_values() {
        let options = options(&[
            ("s3.access-key", "AKIA-EXAMPLE"),
            ("s3.secret-key", "a-secret"),
            ("kubernetes.cluster-id", "orders"),
            ("fs.azure.account.key.acct.dfs.core.windows.net", "another-secret"),
        ]);
        let shown = format!("{options:?}");
        assert_eq!(
            shown,
            r#"{"fs.azure.account.key.acct.dfs.core.windows.net", "s3.access-key", "s3.secret-key"}"#
        );
        assert!(!shown.contains("secret\""), "{shown}");
    }

    #[cfg(feature = "s3")]
    #[test]
    fn the_hadoop_spelling_wins_over_flinks_short_one() {
        let options = options(&[
            ("s3.endpoint", "http://short:9000"),
            ("fs.s3a.endpoint", "http://long:9000"),
        ]);
        assert_eq!(options.s3(&["endpoint"]), Some("http://long:9000"));
        let options = self::options(&[("s3.path-style-access", "true")]);
        assert_eq!(options.s3(&["path.style.access", "path-style-access"]), Some("true"));
    }

    #[test]
    fn schemes_without_a_durable_create_only_store_are_refused_by_name() {
        for (dir, expect) in [
            ("memory:///ha", "keeps nothing across a restart"),
            ("hdfs://namenode/flink/ha", "no object store for this scheme"),
            ("https://example.com/ha", "create-only"),
            ("/mnt/ha", "not a URI"),
        ] {
            let error = open(dir, &StorageOptions::default())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(error.contains(expect) && error.contains(dir), "{dir}: {error}");
        }
    }

    #[cfg(feature = "azure")]
    #[test]
    fn an_azure_account_key_from_the_flink_config_is_used_for_its_account() {
        let options = options(&[("fs.azure.account.key.acct.dfs.core.windows.net", "a2V5")]);
        let opened = open("abfss://ha@acct.dfs.core.windows.net/flink/recovery", &options);
        let (_, path) = opened.expect("a well-formed abfss URI with a key");
        assert_eq!(path.as_ref(), "flink/recovery");
    }
}
