//! Prometheus metrics of the webhook (`/metrics`, text exposition format).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The label of `reviews_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// allowed, denied, bad_request, policy_trap, policy_deadline, policy_memory_cap,
    /// overloaded, context_unavailable (a lease the decision needs could not be read).
    pub outcome: &'static str,
}

/// The labels of `reloads_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// policy, certificate or settings.
    pub what: &'static str,
    /// ok or failed.
    pub result: &'static str,
}

/// The labels of `exemptions_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExemptionLabels {
    /// The rule waived.
    pub rule: String,
    /// The exemption's name in the settings file.
    pub exemption: String,
}

/// Every metric of the webhook, registered under the prefix `flink_ha_webhook`.
pub struct Metrics {
    registry: Registry,
    /// AdmissionReviews answered, by outcome.
    pub reviews: Family<OutcomeLabels, Counter>,
    /// Seconds from the request's arrival to the answer, body read included.
    pub review_seconds: Histogram,
    /// Seconds inside the policy: instantiate + call.
    pub policy_seconds: Histogram,
    /// Reviews being evaluated now.
    pub in_flight: Gauge,
    /// Reloads of the policy, the certificate or the settings, by result.
    pub reloads: Family<ReloadLabels, Counter>,
    /// Findings waived by an exemption, by rule and exemption.
    pub exemptions: Family<ExemptionLabels, Counter>,
    /// Seconds the current policy took to compile.
    pub policy_compile_seconds: Gauge<f64, AtomicU64>,
    /// When the served certificate expires (Unix seconds): alert on it nearing now.
    pub certificate_expiry: Gauge,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// All metrics at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("flink_ha_webhook");
        let reviews = Family::<OutcomeLabels, Counter>::default();
        // 50 µs .. ~3.3 s: a review takes tens of µs, a deadline hit hundreds of ms.
        let buckets = || prometheus_client::metrics::histogram::exponential_buckets(0.00005, 2.0, 17);
        let review_seconds = Histogram::new(buckets());
        let policy_seconds = Histogram::new(buckets());
        let in_flight = Gauge::default();
        let reloads = Family::<ReloadLabels, Counter>::default();
        let policy_compile_seconds = Gauge::<f64, AtomicU64>::default();
        let certificate_expiry = Gauge::default();
        let exemptions = Family::<ExemptionLabels, Counter>::default();
        registry.register(
            "exemptions",
            "Findings waived by an exemption of the settings, by rule and exemption",
            exemptions.clone(),
        );
        registry.register("reviews", "AdmissionReviews answered, by outcome", reviews.clone());
        registry.register(
            "review_duration_seconds",
            "Time from request to answer",
            review_seconds.clone(),
        );
        registry.register(
            "policy_duration_seconds",
            "Time in the policy component (instantiate + call)",
            policy_seconds.clone(),
        );
        registry.register("in_flight_reviews", "Reviews being evaluated now", in_flight.clone());
        registry.register(
            "reloads",
            "Reloads of the policy or the certificate, by result",
            reloads.clone(),
        );
        registry.register(
            "policy_compile_seconds",
            "Compile time of the policy in use",
            policy_compile_seconds.clone(),
        );
        registry.register(
            "certificate_expiry_timestamp_seconds",
            "When the serving certificate in use expires",
            certificate_expiry.clone(),
        );
        Metrics {
            registry,
            reviews,
            review_seconds,
            policy_seconds,
            in_flight,
            reloads,
            policy_compile_seconds,
            certificate_expiry,
            exemptions,
        }
    }

    /// Counts one review with `outcome`.
    pub fn count(&self, outcome: &'static str) {
        self.reviews.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// Counts one reload of `what` (`policy`, `certificate`, `settings`).
    pub fn reloaded(&self, what: &'static str, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.reloads.get_or_create(&ReloadLabels { what, result }).inc();
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
