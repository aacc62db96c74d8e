//! Faults between a kube client and the real API server, injected in a tower layer of
//! the client because a real network does not lose one chosen answer, or let another
//! process write just before one chosen request, on cue. The server stays real.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tower::{Layer, Service, ServiceExt};

use flink_ha_testenv::TestEnv;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Something that happens in the world at a chosen moment (a new leader claims the job,
/// another process writes the ConfigMap); run once.
pub type Hook = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What the next PUTs meet.
pub const PASS: u8 = 0;
/// The next PUT reaches the server; its answer is lost. Then: PASS.
pub const LOSE_NEXT_PUT_ANSWER: u8 = 1;
/// As above, and from then on the server is unreachable.
pub const LOSE_NEXT_PUT_ANSWER_THEN_CUT: u8 = 2;
/// Every request fails before it reaches the server.
pub const CUT: u8 = 3;
/// The next PUT never reaches the server, and the client hears nothing. Then: PASS.
pub const DROP_NEXT_PUT: u8 = 4;

/// The faults a test sets on its client.
#[derive(Clone, Default)]
pub struct Faults {
    /// One of the constants above.
    pub plan: Arc<AtomicU8>,
    /// Run after a lost or dropped PUT, before the client hears of it.
    pub after_lost_put: Arc<Mutex<Option<Hook>>>,
    /// Run before the next DELETE is sent.
    pub before_delete: Arc<Mutex<Option<Hook>>>,
    /// DELETEs the client sent.
    pub deletes: Arc<AtomicUsize>,
}

impl Faults {
    pub fn set_plan(&self, plan: u8) {
        self.plan.store(plan, Ordering::SeqCst);
    }

    pub fn plan(&self) -> u8 {
        self.plan.load(Ordering::SeqCst)
    }

    pub fn after_lost_put(&self, hook: Hook) {
        if let Ok(mut slot) = self.after_lost_put.lock() {
            *slot = Some(hook);
        }
    }

    pub fn before_delete(&self, hook: Hook) {
        if let Ok(mut slot) = self.before_delete.lock() {
            *slot = Some(hook);
        }
    }

    pub fn deletes(&self) -> usize {
        self.deletes.load(Ordering::SeqCst)
    }

    /// A client on the test's API server with these faults in front of it.
    pub async fn client(&self, env: &TestEnv) -> Result<kube::Client, Box<dyn std::error::Error>> {
        let kubeconfig = Kubeconfig::read_from(&env.kubeconfig)?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        Ok(ClientBuilder::try_from(config)?.with_layer(self).build())
    }
}

fn take(slot: &Mutex<Option<Hook>>) -> Option<Hook> {
    slot.lock().map(|mut hook| hook.take()).unwrap_or(None)
}

impl<S> Layer<S> for Faults {
    type Service = Faulty<S>;
    fn layer(&self, inner: S) -> Faulty<S> {
        Faulty {
            inner: Arc::new(tokio::sync::Mutex::new(inner)),
            faults: self.clone(),
        }
    }
}

/// The client's own stack is not `Clone`; requests take turns to get it ready and call
/// it (the lock is not held while the answer is awaited).
pub struct Faulty<S> {
    inner: Arc<tokio::sync::Mutex<S>>,
    faults: Faults,
}

impl<S, B> Service<http::Request<B>> for Faulty<S>
where
    S: Service<http::Request<B>> + Send + 'static,
    S::Error: Into<BoxError> + Send,
    S::Future: Send + 'static,
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
        let plan = self.faults.plan();
        let is_put = request.method() == http::Method::PUT;
        let lose_answer = is_put && matches!(plan, LOSE_NEXT_PUT_ANSWER | LOSE_NEXT_PUT_ANSWER_THEN_CUT);
        let drop_request = is_put && plan == DROP_NEXT_PUT;
        let mut after = None;
        if lose_answer || drop_request {
            self.faults.set_plan(if plan == LOSE_NEXT_PUT_ANSWER_THEN_CUT {
                CUT
            } else {
                PASS
            });
            after = take(&self.faults.after_lost_put);
        }
        let mut before = None;
        if request.method() == http::Method::DELETE {
            self.faults.deletes.fetch_add(1, Ordering::SeqCst);
            before = take(&self.faults.before_delete);
        }
        let inner = self.inner.clone();
        Box::pin(async move {
            if plan == CUT {
                return Err("injected: the API server is unreachable".into());
            }
            if let Some(before) = before {
                before.await;
            }
            if drop_request {
                if let Some(after) = after {
                    after.await;
                }
                return Err("injected: this PUT never reached the server".into());
            }
            let call = {
                let mut service = inner.lock().await;
                service.ready().await.map_err(Into::into)?.call(request)
            };
            let answer = call.await.map_err(Into::into);
            if lose_answer {
                drop(answer);
                if let Some(after) = after {
                    after.await;
                }
                return Err("injected: the answer to this PUT was lost".into());
            }
            answer
        })
    }
}
