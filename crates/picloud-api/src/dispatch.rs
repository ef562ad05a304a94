//! Host dispatch: the first decision for every request.
//!
//! `/healthz` and `/readyz` answer on any Host. Otherwise the Host header is normalised;
//! admin hosts go to the control plane, every other Host is resolved to an app (cached) and
//! goes to the data plane with the [`crate::host::ResolvedApp`] attached. A missing or garbage Host is a
//! 400, an unknown one a 404: neither reaches a handler.

use axum::extract::Request;
use axum::http::header::HOST;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use picloud_core::host::Host;

use crate::error::ApiError;
use crate::state::AppState;

/// Where a request goes.
pub enum Plane {
    /// `/healthz`, `/readyz` on any Host.
    Health(Request),
    /// An admin Host.
    Admin(Request),
    /// An app's Host, with its [`crate::host::ResolvedApp`] attached.
    Data(Request),
    /// Answered here: a bad or unknown Host.
    Refused(Response),
}

pub async fn plane(state: &AppState, mut req: Request) -> Plane {
    let path = req.uri().path();
    if path == "/healthz" || path == "/readyz" {
        return Plane::Health(req);
    }
    if admin_verbatim(&state.config.admin_hosts, &req) {
        return Plane::Admin(req);
    }
    let host = match request_host(&req) {
        Ok(h) => h,
        Err(e) => return Plane::Refused(e.into_response()),
    };
    if state.config.admin_hosts.contains(&host) {
        return Plane::Admin(req);
    }
    match state.resolver.resolve(&host).await {
        Ok(Some(app)) => {
            req.extensions_mut().insert(app);
            Plane::Data(req)
        }
        Ok(None) => Plane::Refused(
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_host",
                "no app answers on this host",
            )
            .into_response(),
        ),
        Err(e) => Plane::Refused(ApiError::from(e).into_response()),
    }
}

/// Whether the Host header is an admin host written exactly as normalised, with at most a
/// valid port: what nearly every admin request sends, answered without `Host::parse`'s
/// allocation and DNS-name checks. Anything else, admin host or not, takes the full path.
fn admin_verbatim(admin_hosts: &[Host], req: &Request) -> bool {
    req.headers()
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|raw| admin_host_verbatim(admin_hosts, raw))
}

/// [`admin_verbatim`] for a Host header's text.
pub(crate) fn admin_host_verbatim(admin_hosts: &[Host], raw: &str) -> bool {
    let (name, port) = match raw.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (raw, None),
    };
    // As `Host::parse` checks a port, and digits only (`parse` would take a sign).
    let port_ok = port.is_none_or(|p| {
        p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok()
    });
    port_ok && admin_hosts.iter().any(|h| h.as_str() == name)
}

/// The request's Host: the `Host` header (HTTP/1.1) or the URI authority (HTTP/2).
fn request_host(req: &Request) -> Result<Host, ApiError> {
    let raw = match req.headers().get(HOST) {
        Some(v) => v
            .to_str()
            .map_err(|_| ApiError::bad_request("bad_host", "the Host header is not valid text"))?,
        None => req
            .uri()
            .authority()
            .map(|a| a.as_str())
            .ok_or_else(|| ApiError::bad_request("bad_host", "the Host header is missing"))?,
    };
    Host::parse(raw).map_err(|e| ApiError::bad_request("bad_host", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verbatim_admin_host_is_exactly_what_parsing_would_find() {
        let admins: Vec<Host> = ["localhost", "127.0.0.1", "[::1]"]
            .iter()
            .map(|h| Host::parse(h).unwrap())
            .collect();
        for raw in [
            "localhost",
            "localhost:8080",
            "127.0.0.1:1",
            "[::1]:80",
            "localhost:",
            "localhost:x",
            "localhost:99999",
            "localhost:+80",
            "LOCALHOST",
            "localhost.",
            " localhost",
            "[::1]",
            "demo.localhost",
            "example.com:80",
        ] {
            let req = Request::builder()
                .header(HOST, raw)
                .body(axum::body::Body::empty())
                .unwrap();
            let fast = admin_verbatim(&admins, &req);
            let parsed = Host::parse(raw).ok().filter(|h| admins.contains(h));
            if fast {
                assert!(
                    parsed.is_some(),
                    "{raw:?} taken as admin, parsing disagrees"
                );
            }
            if ["localhost", "localhost:8080", "127.0.0.1:1", "[::1]:80"].contains(&raw) {
                assert!(fast, "{raw:?} is the usual form");
            }
        }
    }
}
