//! Writes whose answer is lost, against the real API server: the client sends the PUT
//! (the server applies it) and then loses the answer, as a dropped connection or a
//! timeout does. The server is real; only the loss is injected, in a tower layer of the
//! kube client, because a real network does not lose one chosen answer on cue.
//!
//! Flink's `PossibleInconsistentState` scenarios: the payload of a possibly written
//! pointer is never deleted. The runtime goes one step further than Flink: it reads the
//! ConfigMap back and, if its pointer is there, the add has succeeded.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tower::{Layer, Service, ServiceExt};

use flink_ha_runtime::cas::ConfigMapCas;
use flink_ha_runtime::checkpoint_store::{CompletedCheckpointStore, checkpoint_key};
use flink_ha_runtime::fence::Fence;
use flink_ha_runtime::payloads::PayloadStore;
use flink_ha_runtime::{Error, names};
use flink_ha_testenv::TestEnv;

mod common;
use common::cas;

type TestResult = Result<(), Box<dyn std::error::Error>>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

const JOB: &str = "5555aaaa5555aaaa5555aaaa5555aaaa";

/// What the injected fault does to the requests that follow.
const PASS: u8 = 0;
/// The next PUT reaches the server; its answer is lost. Then: PASS.
const LOSE_NEXT_PUT_ANSWER: u8 = 1;
/// As above, and from then on the server is unreachable.
const LOSE_NEXT_PUT_ANSWER_THEN_CUT: u8 = 2;
const CUT: u8 = 3;
/// The next PUT never reaches the server, and the client hears nothing. Then: PASS.
const DROP_NEXT_PUT: u8 = 4;

/// What happens in the world between a lost answer and the client's next request (a new
/// leader claims the job, say); run once, by the request whose answer it follows.
type Meanwhile = Arc<std::sync::Mutex<Option<Pin<Box<dyn Future<Output = ()> + Send>>>>>;

#[derive(Clone)]
struct Faults(Arc<AtomicU8>, Meanwhile);

impl<S> Layer<S> for Faults {
    type Service = Faulty<S>;
    fn layer(&self, inner: S) -> Faulty<S> {
        Faulty {
            inner: Arc::new(tokio::sync::Mutex::new(inner)),
            plan: self.0.clone(),
            meanwhile: self.1.clone(),
        }
    }
}

/// The client's own stack is not `Clone`; requests take turns to get it ready and call
/// it (the lock is not held while the answer is awaited).
struct Faulty<S> {
    inner: Arc<tokio::sync::Mutex<S>>,
    plan: Arc<AtomicU8>,
    meanwhile: Meanwhile,
}

impl<S, B> Service<http::Request<B>> for Faulty<S>
where
    S: Service<http::Request<B>> + Send + 'static,
    S::Error: Send,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    S::Response: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let is_put = request.method() == http::Method::PUT;
        let plan = self.plan.load(Ordering::SeqCst);
        let lose_answer = is_put && matches!(plan, LOSE_NEXT_PUT_ANSWER | LOSE_NEXT_PUT_ANSWER_THEN_CUT);
        let drop_request = is_put && plan == DROP_NEXT_PUT;
        if lose_answer || drop_request {
            self.plan.store(
                if plan == LOSE_NEXT_PUT_ANSWER_THEN_CUT {
                    CUT
                } else {
                    PASS
                },
                Ordering::SeqCst,
            );
        }
        let meanwhile = if lose_answer || drop_request {
            self.meanwhile.lock().map(|mut m| m.take()).unwrap_or(None)
        } else {
            None
        };
        let inner = self.inner.clone();
        Box::pin(async move {
            if plan == CUT {
                return Err("injected: the API server is unreachable".into());
            }
            if drop_request {
                if let Some(meanwhile) = meanwhile {
                    meanwhile.await;
                }
                return Err("injected: this PUT never reached the server".into());
            }
            let call = {
                let mut service = inner.lock().await;
                service.ready().await.map_err(Into::into)?.call(request)
            };
            let answer = call.await.map_err(Into::into);
            if lose_answer {
                let _ = answer;
                if let Some(meanwhile) = meanwhile {
                    meanwhile.await;
                }
                return Err("injected: the answer to this PUT was lost".into());
            }
            answer
        })
    }
}

/// A client on the test's API server whose faults the test sets.
async fn faulty_client(env: &TestEnv) -> Result<(kube::Client, Arc<AtomicU8>, Meanwhile), Box<dyn std::error::Error>> {
    let kubeconfig = Kubeconfig::read_from(&env.kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    let plan = Arc::new(AtomicU8::new(PASS));
    let meanwhile = Meanwhile::default();
    let client = ClientBuilder::try_from(config)?
        .with_layer(&Faults(plan.clone(), meanwhile.clone()))
        .build();
    Ok((client, plan, meanwhile))
}

/// A test's namespace with job `JOB` claimed: a plain and a faulty view of its
/// ConfigMaps, the fault switch, and file:// payloads.
struct Setup {
    _env: TestEnv,
    api: Api<ConfigMap>,
    faulty: Api<ConfigMap>,
    plan: Arc<AtomicU8>,
    meanwhile: Meanwhile,
    storage: tempfile::TempDir,
    payloads: PayloadStore,
    fence: Fence,
}

async fn setup(test: &str) -> Result<Setup, Box<dyn std::error::Error>> {
    let env = TestEnv::new(test).await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let (client, plan, meanwhile) = faulty_client(&env).await?;
    let faulty: Api<ConfigMap> = Api::namespaced(client, &env.namespace);
    let storage = tempfile::tempdir()?;
    let payloads = PayloadStore::open(&format!("file://{}", storage.path().display()), "orders")?;
    let fence = Fence::new(0, "jm-1");
    fence.claim_job(&cas(&api), "orders", JOB).await?;
    Ok(Setup {
        _env: env,
        api,
        faulty,
        plan,
        meanwhile,
        storage,
        payloads,
        fence,
    })
}

fn payload_count(storage: &tempfile::TempDir) -> usize {
    std::fs::read_dir(storage.path().join("orders"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_is_resolved_by_reading_the_pointer_back() -> TestResult {
    let Setup {
        _env,
        api,
        faulty,
        plan,
        storage,
        payloads,
        fence,
        ..
    } = setup("lost-answer").await?;
    let store = CompletedCheckpointStore::new(cas(&faulty), "orders", JOB, payloads, fence, 2);
    assert_eq!(store.recover().await?, None);

    plan.store(LOSE_NEXT_PUT_ANSWER, Ordering::SeqCst);
    store.add(1, Bytes::from_static(b"one")).await?;
    assert_eq!(plan.load(Ordering::SeqCst), PASS, "the fault must have fired");

    // The retry found its own pointer: success, one pointer, one payload.
    let cm = api.get(&names::job_config_map("orders", JOB)).await?;
    assert!(cm.data.unwrap_or_default().contains_key(&checkpoint_key(1)));
    assert_eq!(payload_count(&storage), 1);
    assert_eq!(store.recover().await?, Some((1, Bytes::from_static(b"one"))));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outcome_that_stays_unknown_is_possibly_written_and_keeps_the_payload() -> TestResult {
    let Setup {
        _env,
        api,
        faulty,
        plan,
        storage,
        payloads,
        fence,
        ..
    } = setup("possibly-written").await?;
    // Few retries and a short deadline: the test is about the outcome, not the patience.
    let cut_off = ConfigMapCas::new(faulty, 2, Duration::from_secs(2));
    let store = CompletedCheckpointStore::new(cut_off, "orders", JOB, payloads.clone(), fence.clone(), 2);
    assert_eq!(store.recover().await?, None);

    plan.store(LOSE_NEXT_PUT_ANSWER_THEN_CUT, Ordering::SeqCst);
    match store.add(1, Bytes::from_static(b"one")).await {
        Err(Error::PossiblyWritten { .. }) => {}
        other => panic!("expected PossiblyWritten, got {other:?}"),
    }
    assert_eq!(plan.load(Ordering::SeqCst), CUT, "the fault must have fired");

    // The PUT did land: the pointer is there, and its payload was kept, so the checkpoint
    // is recoverable by whoever reads it next.
    assert_eq!(payload_count(&storage), 1);
    let reader = CompletedCheckpointStore::new(cas(&api), "orders", JOB, payloads, fence, 2);
    assert_eq!(reader.recover().await?, Some((1, Bytes::from_static(b"one"))));
    Ok(())
}

/// A new leader (epoch 1, `jm-2`) claims the job while the old one waits for an answer.
fn successor_claims(setup: &Setup) -> Fence {
    let successor = Fence::new(1, "jm-2");
    let (api, claim) = (setup.api.clone(), successor.clone());
    let claim: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(async move {
        if let Err(error) = claim.claim_job(&cas(&api), "orders", JOB).await {
            panic!("the successor's claim failed: {error}");
        }
    });
    if let Ok(mut meanwhile) = setup.meanwhile.lock() {
        *meanwhile = Some(claim);
    }
    successor
}

/// Issue 12, path 1: the PUT that adds checkpoint 2 (and marks 1) lands, its answer is
/// lost, and a new leader claims the job before the retry. The retry finds its own
/// pointer: the add has succeeded, whatever the fence says now, and the payload stays.
/// (Before the fix the retry's fence check was taken as "definitely not written": the
/// payload of 2 was deleted, 1 was hidden by its mark, and the successor found nothing.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_then_a_new_leader_keeps_the_checkpoint() -> TestResult {
    let s = setup("lost-answer-new-leader").await?;
    let store = CompletedCheckpointStore::new(cas(&s.faulty), "orders", JOB, s.payloads.clone(), s.fence.clone(), 1);
    assert_eq!(store.recover().await?, None);
    store.add(1, Bytes::from_static(b"one")).await?;

    let successor = successor_claims(&s);
    s.plan.store(LOSE_NEXT_PUT_ANSWER, Ordering::SeqCst);
    let added = store.add(2, Bytes::from_static(b"two")).await;
    assert_eq!(s.plan.load(Ordering::SeqCst), PASS, "the fault must have fired");
    assert!(added.is_ok(), "the add landed, so it succeeded: {added:?}");

    let next = CompletedCheckpointStore::new(cas(&s.api), "orders", JOB, s.payloads.clone(), successor, 1);
    assert_eq!(next.recover().await?, Some((2, Bytes::from_static(b"two"))));
    // The deposed leader is fenced out from here on.
    assert!(matches!(
        store.add(3, Bytes::from_static(b"three")).await,
        Err(Error::NotLeader { .. })
    ));
    Ok(())
}

/// The mirror case: the PUT never reached the server, and a new leader claims the job
/// before the retry. Reading back proves the pointer absent and unable to land (the
/// ConfigMap moved past the version the PUT was conditioned on): not written, and the
/// payload goes, so nothing leaks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_write_then_a_new_leader_is_not_written_and_leaks_nothing() -> TestResult {
    let s = setup("dropped-write-new-leader").await?;
    let store = CompletedCheckpointStore::new(cas(&s.faulty), "orders", JOB, s.payloads.clone(), s.fence.clone(), 1);
    assert_eq!(store.recover().await?, None);
    store.add(1, Bytes::from_static(b"one")).await?;

    let successor = successor_claims(&s);
    s.plan.store(DROP_NEXT_PUT, Ordering::SeqCst);
    match store.add(2, Bytes::from_static(b"two")).await {
        Err(Error::NotWritten { .. }) => {}
        other => panic!("expected NotWritten, got {other:?}"),
    }
    assert_eq!(payload_count(&s.storage), 1, "only checkpoint 1's payload is left");
    let next = CompletedCheckpointStore::new(cas(&s.api), "orders", JOB, s.payloads.clone(), successor, 1);
    assert_eq!(next.recover().await?, Some((1, Bytes::from_static(b"one"))));
    Ok(())
}
