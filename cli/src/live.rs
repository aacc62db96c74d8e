//! What `inspect`, `gc` and `audit` read from a cluster: ConfigMaps (live through the
//! current kubeconfig, or from a `kubectl get -o yaml` dump), the workloads that make a
//! cluster id "still there", and the API server's clock.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use flink_ha_policy::ha_state::{ClusterState, ConfigMapRecord, Existence};
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};

/// Which namespaces a command looks at.
#[derive(Clone, Debug)]
pub enum Scope {
    /// One namespace.
    Namespace(String),
    /// Every namespace (`-A`).
    All,
}

impl Scope {
    /// From `-n`/`-A`; neither: the kubeconfig's namespace.
    pub fn new(namespace: Option<&str>, all: bool, client: &kube::Client) -> Scope {
        match (namespace, all) {
            (_, true) => Scope::All,
            (Some(ns), false) => Scope::Namespace(ns.to_owned()),
            (None, false) => Scope::Namespace(client.default_namespace().to_owned()),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Scope::Namespace(ns) => format!("namespace {ns}"),
            Scope::All => "all namespaces".to_owned(),
        }
    }

    /// A typed API over this scope.
    pub fn api<K>(&self, client: &kube::Client) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        match self {
            Scope::Namespace(ns) => Api::namespaced(client.clone(), ns),
            Scope::All => Api::all(client.clone()),
        }
    }
}

/// A ConfigMap as read, and its manifest (for linting it with the core).
pub struct SeenConfigMap {
    pub record: ConfigMapRecord,
    pub object: ConfigMap,
}

/// Runs a command's future on a runtime of its own (one thread: the tools wait on the
/// network, one request at a time).
pub fn block_on<T>(future: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(future)
}

/// The current kubeconfig's client, with the error a user can act on.
pub async fn client() -> Result<kube::Client> {
    kube::Client::try_default()
        .await
        .context("no usable kubeconfig (KUBECONFIG, ~/.kube/config or in-cluster); use --from FILE for a dump")
}

/// The URL of the API server the current kubeconfig points at (`(unknown)` without one):
/// what a gc plan or a backup records as where it was made.
pub async fn api_server_url() -> String {
    match kube::Config::infer().await {
        Ok(config) => config.cluster_url.to_string(),
        Err(_) => "(unknown)".to_owned(),
    }
}

/// Every ConfigMap in scope, a page of 500 at a time.
pub async fn list_configmaps(client: &kube::Client, scope: &Scope) -> Result<Vec<SeenConfigMap>> {
    let api: Api<ConfigMap> = scope.api(client);
    let mut out = Vec::new();
    let mut params = ListParams::default().limit(500);
    loop {
        let page = api
            .list(&params)
            .await
            .with_context(|| format!("listing ConfigMaps in {}", scope.describe()))?;
        out.extend(page.items.into_iter().map(|object| SeenConfigMap {
            record: record_of(&object),
            object,
        }));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(out),
        }
    }
}

/// The ConfigMaps of a `kubectl get cm -o yaml` (or `-o json`) dump: a `List`, single
/// ConfigMaps, or several documents of either.
pub fn read_dump(path: &Path) -> Result<Vec<SeenConfigMap>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(&text).enumerate() {
        let value: serde_json::Value = serde::Deserialize::deserialize(document)
            .with_context(|| format!("{}: document {} is not YAML", path.display(), index + 1))?;
        collect_dump_items(&value, path, &mut out)?;
    }
    Ok(out)
}

fn collect_dump_items(value: &serde_json::Value, path: &Path, out: &mut Vec<SeenConfigMap>) -> Result<()> {
    match value["kind"].as_str() {
        Some("ConfigMap") => {
            let object: ConfigMap = serde_json::from_value(value.clone()).with_context(|| {
                format!(
                    "{}: ConfigMap {} is not a valid ConfigMap",
                    path.display(),
                    value["metadata"]["name"].as_str().unwrap_or("?")
                )
            })?;
            out.push(SeenConfigMap {
                record: record_of(&object),
                object,
            });
        }
        // A `flink-ha backup` file: its ConfigMaps.
        Some(crate::backup::BACKUP_KIND) => {
            for item in value["configmaps"].as_array().into_iter().flatten() {
                let mut item = item.clone();
                item["kind"] = "ConfigMap".into();
                collect_dump_items(&item, path, out)?;
            }
        }
        Some(kind) if kind.ends_with("List") => {
            for item in value["items"].as_array().into_iter().flatten() {
                collect_dump_items(item, path, out)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The record the core reads of a ConfigMap.
pub fn record_of(cm: &ConfigMap) -> ConfigMapRecord {
    let meta = &cm.metadata;
    ConfigMapRecord {
        namespace: meta.namespace.clone().unwrap_or_else(|| "default".to_owned()),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone().filter(|v| !v.is_empty()),
        creation_timestamp: meta.creation_timestamp.as_ref().map(|t| t.0),
        labels: meta.labels.clone().unwrap_or_default(),
        annotations: meta.annotations.clone().unwrap_or_default(),
        owner_references: meta
            .owner_references
            .iter()
            .flatten()
            .map(|o| format!("{}/{}", o.kind, o.name))
            .collect(),
        data: cm.data.clone().unwrap_or_default(),
        binary_data_bytes: cm.binary_data.iter().flatten().map(|(k, v)| k.len() + v.0.len()).sum(),
    }
}

impl Scope {
    /// An untyped API over this scope for one of the Flink Kubernetes Operator's kinds
    /// (`FlinkDeployment`, `FlinkSessionJob`): its CRDs may be absent.
    pub fn operator_api(&self, client: &kube::Client, kind: &str) -> Api<DynamicObject> {
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("flink.apache.org", "v1beta1", kind));
        match self {
            Scope::Namespace(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            Scope::All => Api::all_with(client.clone(), &resource),
        }
    }
}

/// The workloads that keep each cluster id alive: a Deployment named after it or labelled
/// `app=<id>, component=jobmanager` (native and standalone Flink), a Job, StatefulSet or
/// Pod named after it or labelled `app=<id>`, or a FlinkDeployment named after it. Keyed
/// by (namespace, cluster id).
pub async fn workloads(client: &kube::Client, scope: &Scope) -> Result<BTreeMap<(String, String), Vec<String>>> {
    let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let deployments: Api<Deployment> = scope.api(client);
    for d in deployments
        .list(&ListParams::default())
        .await
        .with_context(|| format!("listing Deployments in {}", scope.describe()))?
    {
        let namespace = d.metadata.namespace.clone().unwrap_or_default();
        let name = d.metadata.name.clone().unwrap_or_default();
        let labels = d.metadata.labels.clone().unwrap_or_default();
        let mut ids = vec![name.clone()];
        if labels.get("component").map(String::as_str) == Some("jobmanager")
            && let Some(app) = labels.get("app")
        {
            ids.push(app.clone());
        }
        ids.dedup();
        for id in ids {
            out.entry((namespace.clone(), id))
                .or_default()
                .push(format!("Deployment/{name}"));
        }
    }
    // Flink's standalone application manifests run the JobManager as a `batch/v1` Job;
    // StatefulSets and bare Pods (a TaskManager, a JobManager started by hand) count too:
    // any of them named after the id or labelled `app=<id>` keeps the cluster alive.
    add_labelled::<Job>(client, scope, "Job", &mut out).await?;
    add_labelled::<StatefulSet>(client, scope, "StatefulSet", &mut out).await?;
    add_labelled::<Pod>(client, scope, "Pod", &mut out).await?;
    let api = scope.operator_api(client, "FlinkDeployment");
    match api.list(&ListParams::default()).await {
        Ok(list) => {
            for fd in list {
                let namespace = fd.metadata.namespace.clone().unwrap_or_default();
                let name = fd.metadata.name.clone().unwrap_or_default();
                out.entry((namespace, name.clone()))
                    .or_default()
                    .push(format!("FlinkDeployment/{name}"));
            }
        }
        // No operator installed: no FlinkDeployments.
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(e) => return Err(e).context("listing FlinkDeployments"),
    }
    Ok(out)
}

/// Adds every object of kind `K` in scope under its name and its `app` label.
async fn add_labelled<K>(
    client: &kube::Client,
    scope: &Scope,
    kind: &str,
    out: &mut BTreeMap<(String, String), Vec<String>>,
) -> Result<()>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
    <K as kube::Resource>::DynamicType: Default,
{
    let api: Api<K> = scope.api(client);
    let list = api
        .list_metadata(&ListParams::default())
        .await
        .with_context(|| format!("listing {kind}s in {} (gc needs `list` on them)", scope.describe()))?;
    for object in list {
        let namespace = object.metadata.namespace.clone().unwrap_or_default();
        let name = object.metadata.name.clone().unwrap_or_default();
        let mut ids = vec![name.clone()];
        if let Some(app) = object.metadata.labels.as_ref().and_then(|l| l.get("app")) {
            ids.push(app.clone());
        }
        ids.dedup();
        for id in ids {
            out.entry((namespace.clone(), id))
                .or_default()
                .push(format!("{kind}/{name}"));
        }
    }
    Ok(())
}

/// Sets each cluster's `existence` from the workloads found.
pub fn apply_workloads(clusters: &mut [ClusterState], workloads: &BTreeMap<(String, String), Vec<String>>) {
    for cluster in clusters {
        cluster.existence = match workloads.get(&(cluster.namespace.clone(), cluster.cluster_id.clone())) {
            Some(found) => Existence::Exists {
                workloads: found.clone(),
            },
            None => Existence::Gone,
        };
    }
}

/// The API server's clock (its `Date` header, to the second): lease expiry is judged by
/// it, not by this machine's clock.
pub async fn server_time(client: &kube::Client) -> Result<Timestamp> {
    let request = http::Request::get("/version")
        .body(kube::client::Body::empty())
        .context("building GET /version")?;
    let response = client.send(request).await.context("GET /version")?;
    let Some(date) = response.headers().get(http::header::DATE) else {
        bail!("the API server's answer has no Date header");
    };
    let date = date.to_str().context("the Date header is not text")?;
    jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(date)
        .with_context(|| format!("the Date header `{date}` is not an HTTP date"))
}
