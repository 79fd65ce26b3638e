//! # drover-web-embed
//!
//! The dashboard's built files (`web/dist`, made by `cargo xtask web`),
//! embedded in the binary when it is compiled, so `drover serve` serves the
//! dashboard with no other server and no files beside it. Each file comes
//! with its gzip form (when smaller) and an ETag of its content. A binary
//! compiled before the dashboard was built has no files: [`is_built`] says
//! so.

/// One file of the dashboard.
#[derive(Debug)]
pub struct Asset {
    /// The path it is served at, from `/`.
    pub path: &'static str,
    pub mime: &'static str,
    pub body: &'static [u8],
    /// The body gzipped; empty when that would not be smaller.
    pub gzip: &'static [u8],
    /// A strong ETag of the body, quoted.
    pub etag: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/files.rs"));

/// Every embedded file.
pub fn files() -> &'static [Asset] {
    FILES
}

pub fn get(path: &str) -> Option<&'static Asset> {
    FILES.iter().find(|a| a.path == path)
}

/// Whether the dashboard was built into this binary.
pub fn is_built() -> bool {
    get("/index.html").is_some()
}
