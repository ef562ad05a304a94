//! An app's static site: files uploaded with `PUT /api/v1/apps/{app}/static/{path}` (what
//! `picloud app deploy` sends from the manifest's static directory), served on the app's
//! Host for `GET`/`HEAD` paths that no route matches.
//!
//! A file is stored once, at upload: its bytes and, for compressible types, gzip and brotli
//! variants when they are smaller, as blobs beside the `files::` SDK's; its content type by
//! extension; its SHA-256 as the `ETag`. Serving picks the variant the client accepts,
//! answers `If-None-Match` with `304`, and resolves directories to `index.html` (and, for a
//! single-page app, unknown extension-less paths too). Paths are `FilePath`s: no `..`, no
//! empty or dot segments, so nothing escapes the app.

use std::io::Write;

use axum::body::Body;
use axum::http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG,
    IF_NONE_MATCH, VARY,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use picloud_core::app::AppRef;
use picloud_core::data::{FilePath, StaticFile};
use picloud_dispatch::BlobStore;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::AppState;

/// Largest static file (as the `files::` SDK's largest file).
pub const MAX_STATIC_FILE_BYTES: usize = picloud_core::data::MAX_FILE_BYTES;
/// Smaller files are not worth compressing.
const COMPRESS_FROM_BYTES: usize = 256;

/// A file ready to be recorded: its blobs are written.
pub struct Prepared {
    pub file: StaticFile,
}

/// Writes the bytes (and their compressed variants) as blobs and describes the file.
/// CPU and disk work: call it from a blocking thread.
pub fn prepare(
    blobs: &BlobStore,
    app: &picloud_core::ids::AppId,
    path: FilePath,
    bytes: &[u8],
    now_ms: i64,
) -> std::io::Result<Prepared> {
    let content_type = content_type(path.as_str());
    let etag = hex(&Sha256::digest(bytes));
    let mut written = Vec::new();
    let result = (|| {
        let blob = blobs.put(app, bytes)?;
        written.push(blob.clone());
        let (mut gzip_blob, mut br_blob) = (None, None);
        if compressible(&content_type) && bytes.len() >= COMPRESS_FROM_BYTES {
            let worth = |c: &[u8]| c.len() * 10 < bytes.len() * 9;
            let gz = gzip(bytes)?;
            if worth(&gz) {
                let b = blobs.put(app, &gz)?;
                written.push(b.clone());
                gzip_blob = Some(b);
            }
            let br = brotli(bytes)?;
            if worth(&br) {
                let b = blobs.put(app, &br)?;
                written.push(b.clone());
                br_blob = Some(b);
            }
        }
        Ok(StaticFile {
            path,
            blob,
            gzip_blob,
            br_blob,
            size: bytes.len() as u64,
            etag,
            content_type,
            updated_at: now_ms,
        })
    })();
    match result {
        Ok(file) => Ok(Prepared { file }),
        Err(e) => {
            for b in &written {
                let _ = blobs.delete(app, b);
            }
            Err(e)
        }
    }
}

/// Removes blobs no row names any more; a failure leaves an orphan, never a broken file.
pub fn forget(blobs: &BlobStore, app: &picloud_core::ids::AppId, names: &[String]) {
    for b in names {
        if let Err(e) = blobs.delete(app, b) {
            tracing::warn!(error = %e, "static blob not removed");
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(bytes)?;
    e.finish()
}

fn brotli(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    // Quality 11 is slow on large files; a deploy of a big bundle should not take minutes.
    let quality = if bytes.len() <= 1024 * 1024 { 11 } else { 6 };
    let mut out = Vec::new();
    {
        let mut w = ::brotli::CompressorWriter::new(&mut out, 64 * 1024, quality, 22);
        w.write_all(bytes)?;
        w.flush()?;
    }
    Ok(out)
}

/// The content type by extension; text types say UTF-8.
pub fn content_type(path: &str) -> String {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let textual = mime.type_() == mime_guess::mime::TEXT
        || matches!(
            mime.essence_str(),
            "application/javascript" | "application/json" | "image/svg+xml"
        );
    if textual {
        format!("{}; charset=utf-8", mime.essence_str())
    } else {
        mime.essence_str().to_owned()
    }
}

fn compressible(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default();
    essence.starts_with("text/")
        || matches!(
            essence,
            "application/javascript"
                | "application/json"
                | "application/wasm"
                | "application/xml"
                | "image/svg+xml"
                | "application/manifest+json"
        )
}

/// The file that answers `path` (decoded, from the request), or `None`.
async fn find(state: &AppState, app: &AppRef, path: &str) -> Result<Option<StaticFile>, ApiError> {
    let rel = path.trim_start_matches('/');
    let candidates: Vec<String> = if rel.is_empty() || rel.ends_with('/') {
        vec![format!("{rel}index.html")]
    } else {
        vec![rel.to_owned(), format!("{rel}/index.html")]
    };
    for c in candidates {
        let Ok(p) = FilePath::parse(&c) else {
            continue;
        };
        if let Some(f) = state.store.static_get(&app.id, &p).await? {
            return Ok(Some(f));
        }
    }
    // A single-page app's own routes (`/rooms/42`) are index.html's; a missing asset
    // (`/app.js`, with an extension) stays a 404.
    let last = rel.rsplit('/').next().unwrap_or_default();
    if !last.contains('.') {
        let spa = state
            .store
            .get_app(&app.id)
            .await?
            .is_some_and(|a| a.static_spa);
        if spa {
            let index = FilePath::from_trusted("index.html".to_owned());
            return Ok(state.store.static_get(&app.id, &index).await?);
        }
    }
    Ok(None)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Coding {
    Identity,
    Gzip,
    Brotli,
}

/// Whether `accept` (an `Accept-Encoding` value) allows `coding` (q=0 refuses it).
fn accepts(accept: &str, coding: &str) -> bool {
    accept.split(',').any(|part| {
        let mut it = part.split(';');
        let name = it.next().unwrap_or_default().trim();
        let refused = it.any(|p| {
            let p = p.trim();
            p.strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        (name.eq_ignore_ascii_case(coding) || name == "*") && !refused
    })
}

fn pick<'a>(file: &'a StaticFile, headers: &HeaderMap) -> (Coding, Option<&'a str>) {
    let accept = headers
        .get(ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if let Some(b) = file.br_blob.as_deref().filter(|_| accepts(accept, "br")) {
        return (Coding::Brotli, Some(b));
    }
    if let Some(b) = file
        .gzip_blob
        .as_deref()
        .filter(|_| accepts(accept, "gzip"))
    {
        return (Coding::Gzip, Some(b));
    }
    (Coding::Identity, None)
}

fn etag(file: &StaticFile, coding: Coding) -> String {
    // Each representation its own validator: a cache must not serve gzip bytes to a client
    // that asked for identity.
    let short = &file.etag[..file.etag.len().min(32)];
    match coding {
        Coding::Identity => format!("\"{short}\""),
        Coding::Gzip => format!("\"{short}-gz\""),
        Coding::Brotli => format!("\"{short}-br\""),
    }
}

fn not_modified(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == tag || t == "*")
}

/// A stored blob's bytes, read off the async threads.
pub async fn read(
    state: &AppState,
    app: &picloud_core::ids::AppId,
    blob: &str,
) -> Result<Vec<u8>, ApiError> {
    let blobs = state.invoker.deps().blobs.clone();
    let (app, blob) = (app.clone(), blob.to_owned());
    tokio::task::spawn_blocking(move || blobs.get(&app, &blob))
        .await
        .map_err(|_| ApiError::internal())?
        .map_err(|e| {
            tracing::error!(error = %e, "static blob unreadable");
            ApiError::internal()
        })
}

/// The app's static answer to a `GET`/`HEAD` of `path` (decoded), or `None` when no file
/// answers it.
pub async fn serve(
    state: &AppState,
    app: &AppRef,
    path: &str,
    headers: &HeaderMap,
    head: bool,
) -> Result<Option<Response>, ApiError> {
    let Some(file) = find(state, app, path).await? else {
        return Ok(None);
    };
    let (coding, blob) = pick(&file, headers);
    let tag = etag(&file, coding);
    let mut builder = Response::builder()
        .header(ETAG, &tag)
        .header(VARY, "Accept-Encoding")
        // Revalidated on every use: a deploy shows at once, and an unchanged file costs a 304.
        .header(CACHE_CONTROL, "no-cache");
    if not_modified(headers, &tag) {
        return Ok(Some(
            builder
                .status(StatusCode::NOT_MODIFIED)
                .body(Body::empty())
                .map_err(|_| ApiError::internal())?,
        ));
    }
    let bytes = read(state, &app.id, blob.unwrap_or(&file.blob)).await?;
    if let Some(enc) = match coding {
        Coding::Identity => None,
        Coding::Gzip => Some("gzip"),
        Coding::Brotli => Some("br"),
    } {
        builder = builder.header(CONTENT_ENCODING, enc);
    }
    let content_type = HeaderValue::try_from(file.content_type.as_str())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let len = bytes.len();
    let body = if head {
        Body::empty()
    } else {
        Body::from(bytes)
    };
    Ok(Some(
        builder
            .status(StatusCode::OK)
            .header(CONTENT_TYPE, content_type)
            .header(CONTENT_LENGTH, len)
            .body(body)
            .map_err(|_| ApiError::internal())?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_encoding_is_read_with_its_weights() {
        assert!(accepts("gzip, deflate, br", "br"));
        assert!(accepts("gzip;q=0.5", "gzip"));
        assert!(!accepts("gzip;q=0", "gzip"));
        assert!(!accepts("br;q=0, gzip", "br"));
        assert!(accepts("*", "br"));
        assert!(!accepts("", "gzip"));
        assert!(!accepts("identity", "gzip"));
    }

    #[test]
    fn content_types_come_from_the_extension() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(
            content_type("assets/app.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("logo.png"), "image/png");
        assert_eq!(content_type("x.wasm"), "application/wasm");
        assert_eq!(content_type("README"), "application/octet-stream");
        assert!(compressible(&content_type("a.css")));
        assert!(!compressible(&content_type("a.png")));
    }

    #[test]
    fn if_none_match_compares_each_tag() {
        let mut h = HeaderMap::new();
        h.insert(IF_NONE_MATCH, "\"a\", W/\"b-gz\"".parse().unwrap());
        assert!(not_modified(&h, "\"b-gz\""));
        assert!(not_modified(&h, "\"a\""));
        assert!(!not_modified(&h, "\"b\""));
    }
}
