//! The dashboard: the Svelte app in `dashboard/`, whose build (`dashboard/dist`, committed)
//! is embedded in the binary and served at `/_/` on the admin hosts, so a machine with no
//! Node serves it. rust-embed rather than include_dir (no content types or hashes) or
//! memory-serve (its own router and caching headers): it gives each file's bytes, type and
//! SHA-256, and the answers here add the security headers every dashboard answer carries.
//! Any path under `/_/` that is not a file is the app's own route: it gets `index.html`.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use crate::error::ApiError;
use crate::state::AppState;

#[derive(rust_embed::Embed)]
#[folder = "../../dashboard/dist"]
struct Assets;

/// Where the dashboard is served.
pub const PATH: &str = "/_/";

/// What the dashboard may load and call: its own files and the admin API on its own
/// origin, and the apps' data-plane streams on `*.localhost` (the subscriber-view tail).
/// No inline script, no third-party origin, no framing; `'wasm-unsafe-eval'` lets the
/// Scripts page compile the script checker's WebAssembly (it runs no JS eval). The page itself
/// ([`page_policy`]) also lets the subscriber view reach the apps' own domains.
const CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; \
img-src 'self' data:; connect-src 'self' http://*.localhost:* https://*.localhost:*; \
frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

/// Most app domains named in the page's `connect-src` (a header has to stay a header).
const MAX_POLICY_HOSTS: u32 = 1000;
/// The page does not wait longer than this for them (a hung database must not hang it).
const POLICY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The page's policy: [`CSP`] with every app domain in `connect-src` (scheme-less, any
/// port: the page's own scheme, or its upgrade to https). The domains are read when the
/// page is, so a new one works after a reload; if they cannot be read in time, the page
/// keeps the base policy (the subscriber view then works on `*.localhost` only).
async fn page_policy(state: &AppState) -> HeaderValue {
    let read = state.store.all_domain_hosts(MAX_POLICY_HOSTS);
    let hosts = match tokio::time::timeout(POLICY_READ_TIMEOUT, read).await {
        Ok(Ok(hosts)) => hosts,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "dashboard policy without app domains");
            Vec::new()
        }
        Err(_) => {
            tracing::warn!("dashboard policy without app domains: the database did not answer");
            Vec::new()
        }
    };
    let mut extra = String::new();
    // Stored hosts are validated; anything a source expression could not hold is left out.
    for host in hosts.iter().filter(|h| {
        h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    }) {
        extra.push(' ');
        extra.push_str(host);
        extra.push_str(":*");
    }
    let policy = CSP.replacen(
        "https://*.localhost:*;",
        &format!("https://*.localhost:*{extra};"),
        1,
    );
    HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static(CSP))
}

/// `GET /` and `GET /_` on an admin host.
pub async fn to_dashboard() -> Redirect {
    Redirect::temporary(PATH)
}

/// `GET /_/`.
pub async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    page(&state, &headers).await
}

/// `GET /_/{*path}`: the file, or `index.html` for the app's own routes.
pub async fn asset(
    State(state): State<AppState>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    // The page carries its own policy, whichever URL asks for it.
    if path == "index.html" {
        return page(&state, &headers).await;
    }
    if Assets::get(&path).is_some() {
        return file(&path, &headers);
    }
    // A missing file (something with an extension, or under `assets/`) is a 404; any other
    // path is a page of the app.
    let last = path.rsplit('/').next().unwrap_or_default();
    if path.starts_with("assets/") || last.contains('.') {
        return secured(ApiError::not_found("file").into_response());
    }
    page(&state, &headers).await
}

/// `index.html`, under the page's policy.
async fn page(state: &AppState, headers: &HeaderMap) -> Response {
    let mut res = file("index.html", headers);
    let policy = page_policy(state).await;
    res.headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, policy);
    res
}

fn file(path: &str, headers: &HeaderMap) -> Response {
    let Some(file) = Assets::get(path) else {
        return secured(ApiError::not_found("file").into_response());
    };
    let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()[..16]));
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes());
    let mut res = if unchanged {
        let mut res = Response::new(Body::empty());
        *res.status_mut() = StatusCode::NOT_MODIFIED;
        res
    } else {
        let mut res = Response::new(Body::from(file.data.into_owned()));
        if let Ok(v) = HeaderValue::from_str(file.metadata.mimetype()) {
            res.headers_mut().insert(header::CONTENT_TYPE, v);
        }
        res
    };
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    // Stable file names: the browser revalidates (a 304 when unchanged).
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    secured(res)
}

/// The security headers of every dashboard answer.
fn secured(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_is_embedded() {
        let index = Assets::get("index.html").expect("dashboard/dist/index.html");
        let text = std::str::from_utf8(&index.data).unwrap();
        assert!(text.contains("/_/assets/"), "built with base /_/: {text}");
        assert!(
            !text.contains("<script>") && !text.contains("<script type=\"module\">"),
            "no inline script (the CSP forbids it)"
        );
    }
}
