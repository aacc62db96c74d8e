//! The policy component in wasmtime: compiled once, instantiated fresh for every call.
//!
//! One [`PolicyEngine`] per process owns the wasmtime `Engine`. It has the pooling
//! allocator, sized to the webhook's concurrency, and a thread that ticks the epoch.
//! A [`Policy`] is one compiled component with its `InstancePre`, so a call does no
//! linking, only a slot from the pool. Every call runs in a fresh `Store` that has a
//! memory cap and an epoch deadline: a trap poisons an instance, so an instance is
//! never reused, and a policy that loops or hoards memory costs one request its answer,
//! never the server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, Linker};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store, Trap,
};

use crate::PolicyError;

// Generated from wit/policy.wit, whose doc comments become the docs; the few items the
// generator leaves undocumented are the WIT's own.
#[allow(missing_docs)]
mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "policy",
    });
}

pub use bindings::{ExemptionApplied, InputFormat, ObjectRef, ReviewContext, ReviewError, ReviewSettings, Reviewed};

/// The policy the webhook was built with: the core as a component (see build.rs).
pub const EMBEDDED_POLICY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/policy.wasm"));

/// Limits of every evaluation.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Evaluations that may run at once: the pool's size. The server's semaphore is
    /// no larger, so a request never waits on the pool itself.
    pub max_concurrency: u32,
    /// Linear memory one instance may grow to.
    pub memory_cap_bytes: usize,
    /// Wall-clock budget of one call, enforced by epoch interruption.
    pub deadline: Duration,
    /// How often the epoch ticks; the deadline is rounded up to whole ticks.
    pub epoch_tick: Duration,
    /// Low bytes of each pooled linear memory reset in place when a slot is freed,
    /// instead of handed back to the kernel, so the next instance writes its stack
    /// and heap without page faults. `None`: 4 MiB where Linux has the PAGEMAP_SCAN
    /// ioctl (6.7+; only the pages written are reset), else 0 (a memset of untouched
    /// pages would cost more than the faults). BENCHMARKS.md has the measurements.
    pub keep_resident_bytes: Option<usize>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_concurrency: 64,
            memory_cap_bytes: 128 << 20,
            deadline: Duration::from_millis(500),
            epoch_tick: Duration::from_millis(10),
            keep_resident_bytes: None,
        }
    }
}

/// Table bytes per pooled instance reset in place (where PAGEMAP_SCAN is available).
const TABLE_KEEP_RESIDENT: usize = 64 << 10;

/// The wasmtime engine with the pooling allocator and the epoch ticker.
pub struct PolicyEngine {
    engine: Engine,
    limits: Limits,
    deadline_ticks: u64,
    ticker_stop: Arc<AtomicBool>,
}

impl PolicyEngine {
    /// The engine, its instance pool and its epoch thread, refused when `limits` cannot
    /// work.
    pub fn new(limits: Limits) -> Result<PolicyEngine, PolicyError> {
        if limits.max_concurrency == 0 {
            return Err(PolicyError::Config("max concurrency must be at least 1".into()));
        }
        if limits.epoch_tick.is_zero() || limits.deadline.is_zero() {
            return Err(PolicyError::Config(
                "the deadline and the epoch tick must be above zero".into(),
            ));
        }
        let slots = limits.max_concurrency;
        let pagemap = PoolingAllocationConfig::is_pagemap_scan_available();
        let keep_resident = limits.keep_resident_bytes.unwrap_or(if pagemap { 4 << 20 } else { 0 });
        tracing::debug!(pagemap, keep_resident, "pooling allocator");
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(slots)
            // A component of one core module: a few core instances and tables each,
            // one memory. Spare room costs address space only.
            .total_core_instances(slots * 4)
            .total_memories(slots)
            .total_tables(slots * 4)
            .max_memory_size(limits.memory_cap_bytes)
            .linear_memory_keep_resident(keep_resident)
            // The funcref tables too (the policy's has 443 entries, under 4 KiB): reset
            // in place, not by madvise, which cost every call a syscall and the next one a
            // page fault on lazy table init (issue 16, BENCHMARKS.md).
            .table_keep_resident(if pagemap { TABLE_KEEP_RESIDENT } else { 0 })
            .pagemap_scan(if pagemap { Enabled::Yes } else { Enabled::No });
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        // Only in builds for profiling (feature `perfmap`): perf names guest functions.
        #[cfg(feature = "perfmap")]
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        let engine = Engine::new(&config).map_err(|e| PolicyError::Config(format!("{e:#}")))?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        let (weak, stop, tick) = (engine.weak(), ticker_stop.clone(), limits.epoch_tick);
        std::thread::Builder::new()
            .name("policy-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| PolicyError::Config(format!("cannot start the epoch thread: {e}")))?;
        // +1: the tick in progress when the call starts may be nearly over.
        let deadline_ticks = limits.deadline.as_nanos().div_ceil(limits.epoch_tick.as_nanos()) as u64 + 1;
        Ok(PolicyEngine {
            engine,
            limits,
            deadline_ticks,
            ticker_stop,
        })
    }

    /// The limits every evaluation runs under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The names a component imports (the policy must import nothing: no files,
    /// network, clock or environment).
    pub fn imports_of(&self, wasm: &[u8]) -> Result<Vec<String>, PolicyError> {
        let component = Component::new(&self.engine, wasm).map_err(|e| PolicyError::Load {
            source_name: "component".into(),
            reason: format!("{e:#}"),
        })?;
        let ty = component.component_type();
        Ok(ty.imports(&self.engine).map(|(name, _)| name.to_string()).collect())
    }

    /// Compiles and pre-instantiates a component (seconds for the full core: once per
    /// policy, never per request). It must export the `policy` world and import nothing.
    pub fn compile(&self, wasm: &[u8], source: &str) -> Result<Policy, PolicyError> {
        let started = Instant::now();
        let component = Component::new(&self.engine, wasm).map_err(|e| PolicyError::Load {
            source_name: source.to_string(),
            reason: format!("{e:#}"),
        })?;
        let linker: Linker<Evaluation> = Linker::new(&self.engine);
        let pre = linker.instantiate_pre(&component).map_err(|e| PolicyError::Load {
            source_name: source.to_string(),
            reason: format!("{e:#}"),
        })?;
        let pre = bindings::PolicyPre::new(pre).map_err(|e| PolicyError::Load {
            source_name: source.to_string(),
            reason: format!("it does not export the flink-ha:policy world: {e:#}"),
        })?;
        let mut policy = Policy {
            engine: self.engine.clone(),
            pre,
            memory_cap_bytes: self.limits.memory_cap_bytes,
            deadline: self.limits.deadline,
            deadline_ticks: self.deadline_ticks,
            source: source.to_string(),
            version: String::new(),
            compile_time: Duration::ZERO,
        };
        // One real call proves the component runs, and names its version in logs.
        policy.version = policy.version_call().map_err(|e| PolicyError::Load {
            source_name: source.to_string(),
            reason: format!("its `version` call failed: {e}"),
        })?;
        policy.compile_time = started.elapsed();
        Ok(policy)
    }
}

impl Drop for PolicyEngine {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// One compiled policy, ready to instantiate.
pub struct Policy {
    engine: Engine,
    pre: bindings::PolicyPre<Evaluation>,
    memory_cap_bytes: usize,
    deadline: Duration,
    deadline_ticks: u64,
    source: String,
    version: String,
    compile_time: Duration,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("source", &self.source)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// What an evaluation's store holds: the memory limiter.
pub struct Evaluation {
    limiter: MemoryCap,
}

/// Refuses memory growth past the cap and remembers that it did, so a trap that
/// follows is reported as the memory cap and not as a bare trap.
struct MemoryCap {
    cap: usize,
    refused: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.refused = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}

impl Policy {
    /// Where the policy came from (`embedded` or a file path).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The component's own version string.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// How long compiling and checking it took.
    pub fn compile_time(&self) -> Duration {
        self.compile_time
    }

    /// Reviews one AdmissionReview, with what was looked up for it (`context`, for an
    /// earlier [`ReviewError::ContextNeeded`]). `Ok(Err(_))`: no decision (a bad
    /// request, or a context to look up or that could not be); `Err`: the policy itself
    /// failed (trap, deadline, memory cap).
    pub fn review(
        &self,
        admission_review: &str,
        now_unix_ms: i64,
        settings: &ReviewSettings,
        context: Option<&ReviewContext>,
    ) -> Result<Result<Reviewed, ReviewError>, PolicyError> {
        self.call(|policy, store| policy.call_review(store, admission_review, now_unix_ms, settings, context))
    }

    /// Lints one input; the `flink-ha lint --format json` report.
    pub fn lint(&self, name: &str, input: &[u8], format: InputFormat) -> Result<String, PolicyError> {
        self.call(|policy, store| policy.call_lint(store, name, input, format))
    }

    /// The rule catalogue as JSON.
    pub fn rules(&self) -> Result<String, PolicyError> {
        self.call(|policy, store| policy.call_rules(store))
    }

    /// Calls the component's `version` export in a fresh instance (what [`Policy::version`]
    /// cached at load): the cost of instantiate + a call that does nothing.
    pub fn version_uncached(&self) -> Result<String, PolicyError> {
        self.version_call()
    }

    fn version_call(&self) -> Result<String, PolicyError> {
        self.call(|policy, store| policy.call_version(store))
    }

    fn call<R>(
        &self,
        f: impl FnOnce(&bindings::Policy, &mut Store<Evaluation>) -> wasmtime::Result<R>,
    ) -> Result<R, PolicyError> {
        let mut store = Store::new(
            &self.engine,
            Evaluation {
                limiter: MemoryCap {
                    cap: self.memory_cap_bytes,
                    refused: false,
                },
            },
        );
        store.limiter(|state| &mut state.limiter);
        store.set_epoch_deadline(self.deadline_ticks);
        let result = self
            .pre
            .instantiate(&mut store)
            .and_then(|policy| f(&policy, &mut store));
        result.map_err(|e| self.classify(e, store.data().limiter.refused))
    }

    fn classify(&self, error: wasmtime::Error, memory_refused: bool) -> PolicyError {
        if memory_refused {
            return PolicyError::MemoryCap {
                cap_mib: self.memory_cap_bytes >> 20,
            };
        }
        match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => PolicyError::Deadline {
                deadline_ms: self.deadline.as_millis() as u64,
            },
            Some(trap) => PolicyError::Trap(trap.to_string()),
            None => PolicyError::Trap(format!("{error:#}")),
        }
    }
}
