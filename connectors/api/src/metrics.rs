//! Prometheus metrics, served at `/metrics` in the text format 0.0.4: the
//! requests the API answered, counted by a middleware on every route, and
//! whatever the node registers (its own counters, read at scrape time by a
//! collector).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// The `Content-Type` of what [`Metrics::render`] writes.
pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Every metric name starts with it.
const PREFIX: &str = "drover";

/// What requests that matched no route are counted as: their raw paths
/// would make one series per scanner's guess.
const UNMATCHED: &str = "unmatched";

/// A request's series: the route template, never the raw path, so that
/// there is one series per route rather than one per device id.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
}

type Latency = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// Latency buckets from 1 ms to about 16 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// The API's request counters; cheap to clone (the series are shared).
#[derive(Debug, Clone)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Latency,
}

impl HttpMetrics {
    fn observe(&self, method: &'static str, route: String, status: u16, seconds: f64) {
        self.latency
            .get_or_create(&RouteLabels {
                method,
                route: route.clone(),
            })
            .observe(seconds);
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status,
            })
            .inc();
    }
}

/// The node's metrics registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    http: HttpMetrics,
    /// Whether `/metrics` answers without a token (`auth.public_metrics`).
    public: bool,
}

impl Metrics {
    pub fn new(public: bool) -> Metrics {
        let mut registry = Registry::with_prefix(PREFIX);
        let http = HttpMetrics {
            requests: Family::default(),
            latency: Latency::new_with_constructor(latency_histogram),
        };
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            http.requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time from a request's arrival to its answer, by method and route template",
            Unit::Seconds,
            http.latency.clone(),
        );
        Metrics {
            registry,
            http,
            public,
        }
    }

    /// Adds metrics read at each scrape (the node's counters).
    pub fn register_collector(&mut self, collector: Box<dyn Collector>) {
        self.registry.register_collector(collector);
    }

    /// Every metric in the Prometheus text format 0.0.4.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }

    pub fn public(&self) -> bool {
        self.public
    }

    pub fn http(&self) -> HttpMetrics {
        self.http.clone()
    }
}

/// The middleware that counts and times every request by route template.
pub async fn record(State(metrics): State<HttpMetrics>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    let seconds = started.elapsed().as_secs_f64();
    metrics.observe(method, route, response.status().as_u16(), seconds);
    response
}

/// Methods outside the standard ones are one series, whatever a client sends.
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    KNOWN
        .iter()
        .find(|known| *known == method)
        .map_or("other", Method::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    async fn call(app: &Router, method: &str, path: &str) -> u16 {
        let request = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .expect("a request");
        let response = app.clone().oneshot(request).await.expect("an answer");
        response.status().as_u16()
    }

    #[tokio::test]
    async fn requests_are_counted_by_route_template_and_status_and_timed() {
        let metrics = Metrics::new(true);
        let app = Router::new()
            .route("/api/v1/devices/{id}", get(|| async { "a device" }))
            .layer(axum::middleware::from_fn_with_state(metrics.http(), record));
        assert_eq!(
            call(&app, "GET", "/api/v1/devices/356307042441013").await,
            200
        );
        assert_eq!(
            call(&app, "GET", "/api/v1/devices/352312094312345").await,
            200
        );
        assert_eq!(call(&app, "POST", "/api/v1/devices/1").await, 405);
        assert_eq!(call(&app, "GET", "/wp-login.php").await, 404);
        assert_eq!(call(&app, "BREW", "/api/v1/devices/1").await, 405);

        let text = metrics.render().expect("renders");
        let has = |line: &str| text.lines().any(|l| l == line);
        let route = r#"route="/api/v1/devices/{id}""#;
        assert!(
            has(&format!(
                r#"drover_http_requests_total{{method="GET",{route},status="200"}} 2"#
            )),
            "{text}"
        );
        assert!(
            has(&format!(
                r#"drover_http_requests_total{{method="POST",{route},status="405"}} 1"#
            )),
            "{text}"
        );
        assert!(
            has(r#"drover_http_requests_total{method="GET",route="unmatched",status="404"} 1"#),
            "{text}"
        );
        assert!(
            has(&format!(
                r#"drover_http_requests_total{{method="other",{route},status="405"}} 1"#
            )),
            "{text}"
        );
        assert!(
            has(&format!(
                r#"drover_http_request_duration_seconds_count{{method="GET",{route}}} 2"#
            )),
            "{text}"
        );
        let all_in_the_last_bucket = text.lines().any(|l| {
            l.starts_with("drover_http_request_duration_seconds_bucket{")
                && l.contains(route)
                && l.contains(r#"le="+Inf""#)
                && l.ends_with(" 2")
        });
        assert!(all_in_the_last_bucket, "{text}");
        assert!(
            !text.contains("356307042441013"),
            "raw paths never become labels"
        );
        assert!(
            !text.contains("wp-login"),
            "unmatched paths never become labels"
        );
    }

    #[derive(Debug)]
    struct Fixed;

    impl Collector for Fixed {
        fn encode(
            &self,
            mut encoder: prometheus_client::encoding::DescriptorEncoder,
        ) -> Result<(), std::fmt::Error> {
            use prometheus_client::encoding::EncodeMetric;
            let counter = prometheus_client::metrics::counter::ConstCounter::new(7u64);
            let metric =
                encoder.encode_descriptor("records", "help", None, counter.metric_type())?;
            counter.encode(metric)
        }
    }

    #[test]
    fn collectors_are_read_at_each_render_under_the_same_prefix() {
        let mut metrics = Metrics::new(false);
        metrics.register_collector(Box::new(Fixed));
        let text = metrics.render().expect("renders");
        assert!(
            text.lines().any(|l| l == "drover_records_total 7"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE drover_records_total counter"),
            "{text}"
        );
        assert!(!metrics.public());
    }
}
