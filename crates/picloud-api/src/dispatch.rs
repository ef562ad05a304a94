//! Host dispatch: the first decision for every request.
//!
//! `/healthz` and `/readyz` answer on any Host. Otherwise the host (see `host_text`) is normalised;
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
    let raw = match host_text(&req) {
        Ok(raw) => raw,
        Err(e) => return Plane::Refused(e.into_response()),
    };
    if admin_host_verbatim(&state.config.admin_hosts, raw) {
        return Plane::Admin(req);
    }
    let host = match Host::parse(raw) {
        Ok(h) => h,
        Err(e) => {
            return Plane::Refused(ApiError::bad_request("bad_host", e.to_string()).into_response())
        }
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
                picloud_realtime::codes::Code::UnknownHost.as_str(),
                "no app answers on this host",
            )
            .into_response(),
        ),
        Err(e) => Plane::Refused(ApiError::from(e).into_response()),
    }
}

/// The request's host, as RFC 9112 §3.2 has it: the request target's authority when it
/// has one (absolute form; HTTP/2's `:authority`), which wins over `Host`; otherwise the
/// one `Host` header. Several `Host` headers are refused, whatever the target: two hosts
/// are two answers to "which tenant", and a proxy may have read the other one.
fn host_text(req: &Request) -> Result<&str, ApiError> {
    let mut headers = req.headers().get_all(HOST).iter();
    let header = headers.next();
    if headers.next().is_some() {
        return Err(ApiError::bad_request(
            "bad_host",
            "the request has more than one Host header",
        ));
    }
    if let Some(authority) = req.uri().authority() {
        return Ok(authority.as_str());
    }
    header
        .ok_or_else(|| ApiError::bad_request("bad_host", "the Host header is missing"))?
        .to_str()
        .map_err(|_| ApiError::bad_request("bad_host", "the Host header is not valid text"))
}

/// Whether a host is an admin host written exactly as normalised, with at most a valid
/// port: what nearly every admin request sends, answered without `Host::parse`'s
/// allocation and DNS-name checks. Anything else, admin host or not, takes the full path.
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
            let fast = admin_host_verbatim(&admins, host_text(&req).unwrap());
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
