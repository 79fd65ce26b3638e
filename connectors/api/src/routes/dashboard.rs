//! The dashboard (`web/`): its files, embedded in the binary
//! (`drover-web-embed`), at `/`. The page learns the tile server from a
//! `<meta>` the node writes into it, and a Content-Security-Policy lets it
//! load scripts and open connections only from the node (images also from
//! the tile server). Files revalidate by ETag and go out gzipped to
//! browsers that take it.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use drover_web_embed::Asset;
use sha2::{Digest, Sha256};

use crate::Dashboard;

/// A file as it is served: the embedded body, or the page with the tile
/// server written in.
struct Served {
    mime: &'static str,
    body: bytes::Bytes,
    gzip: &'static [u8],
    etag: HeaderValue,
}

pub(super) fn routes<S: Clone + Send + Sync + 'static>(dashboard: &Dashboard) -> Router<S> {
    if !dashboard.enabled {
        return Router::new();
    }
    let router = if drover_web_embed::is_built() {
        files(&dashboard.tile_url)
    } else {
        Router::new().route("/", get(not_built))
    };
    router.layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
        header::CONTENT_SECURITY_POLICY,
        policy(&dashboard.tile_url),
    ))
}

fn files<S: Clone + Send + Sync + 'static>(tile_url: &str) -> Router<S> {
    let mut router = Router::new();
    for asset in drover_web_embed::files() {
        let served = Arc::new(served(asset, tile_url));
        let handler = move |headers: HeaderMap| {
            let served = Arc::clone(&served);
            async move { respond(&served, &headers) }
        };
        router = if asset.path == "/index.html" {
            router
                .route("/", get(handler.clone()))
                .route(asset.path, get(handler))
        } else {
            router.route(asset.path, get(handler))
        };
    }
    router
}

fn served(asset: &'static Asset, tile_url: &str) -> Served {
    if asset.path != "/index.html" {
        return Served {
            mime: asset.mime,
            body: bytes::Bytes::from_static(asset.body),
            gzip: asset.gzip,
            etag: HeaderValue::from_static(asset.etag),
        };
    }
    let page = String::from_utf8_lossy(asset.body).replace("{{TILE_URL}}", &escape(tile_url));
    let digest = Sha256::digest(page.as_bytes());
    let etag = format!("\"{}\"", hex::encode(&digest[..8]));
    Served {
        mime: asset.mime,
        body: bytes::Bytes::from(page),
        gzip: &[],
        etag: HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"page\"")),
    }
}

fn respond(served: &Served, headers: &HeaderMap) -> Response {
    let unchanged = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| tag.trim() == served.etag || tag.trim() == "*");
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else if !served.gzip.is_empty() && accepts_gzip(headers) {
        let mut response = Body::from(served.gzip).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        response
    } else {
        Body::from(served.body.clone()).into_response()
    };
    let headers = response.headers_mut();
    if !unchanged {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(served.mime));
    }
    headers.insert(header::ETAG, served.etag.clone());
    // Always revalidated: a new binary serves new files at the same paths.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    response
}

/// Whether `Accept-Encoding` takes gzip (and does not refuse it, `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

async fn not_built() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Html(
            "<!doctype html><title>Drover</title><h1>The dashboard is not built into this binary</h1>\
             <p>Run <code>cargo xtask web</code> and build <code>drover</code> again \
             (<code>cargo xtask demo</code> does both). The API is at <a href=\"/api/docs\">/api/docs</a>.</p>",
        ),
    )
        .into_response()
}

/// The page may run its own scripts and WebAssembly, talk to the node
/// (REST and the stream's WebSocket), and load images from itself and the
/// tile server; nothing may frame it.
fn policy(tile_url: &str) -> HeaderValue {
    let tiles = tile_origin(tile_url)
        .map(|o| format!(" {o}"))
        .unwrap_or_default();
    let policy = format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:{tiles}; connect-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    );
    HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static("default-src 'self'"))
}

/// `https://tile.example:8443` of a tile URL template; `{s}` subdomains
/// become a wildcard.
fn tile_origin(tile_url: &str) -> Option<String> {
    let (scheme, rest) = tile_url.split_once("://")?;
    let host = rest.split('/').next()?.replace("{s}", "*");
    let safe = |s: &str| {
        !s.is_empty()
            && s.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '*' | '[' | ']')
            })
    };
    (matches!(scheme, "http" | "https") && safe(&host)).then(|| format!("{scheme}://{host}"))
}

/// Text for an HTML attribute value.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_taken_unless_refused() {
        let mut headers = HeaderMap::new();
        assert!(!accepts_gzip(&headers));
        for (value, wanted) in [
            ("gzip, deflate, br", true),
            ("br;q=1.0, gzip;q=0.8", true),
            ("gzip;q=0", false),
            ("identity", false),
            ("*", true),
        ] {
            headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(value));
            assert_eq!(accepts_gzip(&headers), wanted, "{value}");
        }
    }

    #[test]
    fn the_tile_server_is_the_only_other_image_source() {
        assert_eq!(
            tile_origin("https://tile.openstreetmap.org/{z}/{x}/{y}.png").as_deref(),
            Some("https://tile.openstreetmap.org")
        );
        assert_eq!(
            tile_origin("https://{s}.tiles.example:8443/{z}/{x}/{y}").as_deref(),
            Some("https://*.tiles.example:8443")
        );
        assert_eq!(tile_origin(""), None);
        assert_eq!(tile_origin("javascript:alert(1)"), None);
        assert_eq!(tile_origin("https://a.example;script-src */x"), None);
        let csp = policy("");
        assert!(
            csp.to_str()
                .is_ok_and(|c| c.contains("img-src 'self' data:;"))
        );
    }

    #[test]
    fn the_tile_url_cannot_break_out_of_the_page() {
        assert_eq!(escape("\"><script>"), "&quot;&gt;&lt;script&gt;");
    }
}
