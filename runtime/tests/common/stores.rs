//! Faults in front of a real object store (the local file system), for what a real store
//! does not do on cue: stand still at a chosen request while the world moves on (a leader
//! paused mid-cleanup), or take minutes to answer a write (object_store retrying a slow
//! store). The files stay real.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, PutResult,
};

use super::faults::Hook;

/// The local file system; `hook` runs once, before the first request (a listing, a read
/// or a write) whose path contains `hook_on`; every write waits `put_delay` first.
pub struct Hooked {
    inner: Arc<object_store::local::LocalFileSystem>,
    hook_on: String,
    hook: Mutex<Option<Hook>>,
    put_delay: Duration,
}

impl Hooked {
    pub fn new(hook_on: &str, hook: Option<Hook>, put_delay: Duration) -> Hooked {
        Hooked {
            inner: Arc::new(object_store::local::LocalFileSystem::new()),
            hook_on: hook_on.to_string(),
            hook: Mutex::new(hook),
            put_delay,
        }
    }

    /// The hook, if `path` is the first to match.
    fn take_hook(&self, path: Option<&Path>) -> Option<Hook> {
        let matches = path.is_some_and(|p| p.as_ref().contains(&self.hook_on));
        if !matches {
            return None;
        }
        self.hook.lock().map(|mut hook| hook.take()).unwrap_or(None)
    }
}

impl fmt::Debug for Hooked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hooked({})", self.inner)
    }
}

impl fmt::Display for Hooked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hooked({})", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for Hooked {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        if let Some(hook) = self.take_hook(Some(location)) {
            hook.await;
        }
        tokio::time::sleep(self.put_delay).await;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        if let Some(hook) = self.take_hook(Some(location)) {
            hook.await;
        }
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let hook = self.take_hook(prefix);
        let inner = self.inner.clone();
        let prefix = prefix.cloned();
        futures::stream::once(async move {
            if let Some(hook) = hook {
                hook.await;
            }
            inner.list(prefix.as_ref())
        })
        .flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        if let Some(hook) = self.take_hook(prefix) {
            hook.await;
        }
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}
