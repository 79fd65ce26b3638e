//! Embeds every file of the dashboard's build output (`web/dist`, made by
//! `cargo xtask web`; `DROVER_WEB_DIST` points elsewhere) with its gzip
//! form and an ETag. Without a build the list is empty and the node says so
//! at `/`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs};

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

fn main() {
    let manifest = PathBuf::from(
        env::var_os("CARGO_MANIFEST_DIR").expect("invariant: cargo sets CARGO_MANIFEST_DIR"),
    );
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("invariant: cargo sets OUT_DIR"));
    let dist = env::var_os("DROVER_WEB_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../dist"));
    println!("cargo:rerun-if-env-changed=DROVER_WEB_DIST");
    println!("cargo:rerun-if-changed={}", dist.display());

    let mut files = Vec::new();
    walk(&dist, &dist, &mut files);
    files.sort();
    let mut code = String::from("static FILES: &[Asset] = &[\n");
    for (i, (name, path)) in files.iter().enumerate() {
        let body = fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let gzip = gzip(&body);
        let gzip_path = out.join(format!("{i}.gz"));
        fs::write(&gzip_path, &gzip)
            .unwrap_or_else(|e| panic!("writing {}: {e}", gzip_path.display()));
        let digest = Sha256::digest(&body);
        let etag: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        let _ = writeln!(
            code,
            "    Asset {{ path: {path:?}, mime: {mime:?}, body: include_bytes!({file:?}), gzip: include_bytes!({gz:?}), etag: \"\\\"{etag}\\\"\" }},",
            path = format!("/{name}"),
            mime = mime(name),
            file = path.display().to_string(),
            gz = if gzip.len() < body.len() {
                gzip_path.display().to_string()
            } else {
                out.join("empty").display().to_string()
            },
        );
    }
    code.push_str("];\n");
    fs::write(out.join("empty"), b"").expect("invariant: OUT_DIR is writable");
    fs::write(out.join("files.rs"), code).expect("invariant: OUT_DIR is writable");
}

/// Files under `dir` as (path relative to `root` with `/`, full path),
/// leaving out dotfiles (the directory's own `.gitignore`).
fn walk(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            walk(root, &path, files);
        } else if let Ok(relative) = path.strip_prefix(root) {
            let relative = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            files.push((relative, path));
        }
    }
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder
        .write_all(body)
        .expect("invariant: writing to memory");
    encoder.finish().expect("invariant: writing to memory")
}

fn mime(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "wasm" => "application/wasm",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}
