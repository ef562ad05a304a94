//! 404s that name the right host. The common first-day mistake is a realtime URL sent to an
//! admin host, or an admin API call sent to an app's Host: both planes share the port, so
//! the answer says where the path lives instead of a bare "route not found".

use axum::http::header::HOST;
use axum::http::HeaderMap;

use crate::error::ApiError;

fn port(headers: &HeaderMap) -> String {
    headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.rsplit_once(':'))
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .map_or_else(String::new, |p| format!(":{p}"))
}

/// An unknown path on an admin host.
pub fn on_admin_host(path: &str, headers: &HeaderMap) -> ApiError {
    if path == "/realtime" || path.starts_with("/realtime/") {
        return ApiError::not_found(&format!(
            "route (realtime streams are served on an app's Host, not on an admin host: \
             http://<slug>.localhost{}{path} or one of the app's domains)",
            port(headers)
        ));
    }
    ApiError::not_found("route")
}

/// A path no route of the app matches, when it belongs to the admin host.
pub fn on_app_host(path: &str, headers: &HeaderMap, admin_host: &str) -> Option<ApiError> {
    let admin = path == "/api/v1" || path.starts_with("/api/v1/");
    let dashboard = path == "/_" || path.starts_with("/_/");
    (admin || dashboard).then(|| {
        let what = if admin {
            "the admin API"
        } else {
            "the dashboard"
        };
        ApiError::not_found(&format!(
            "route (no route of this app matches; {what} is served on an admin host, not on \
             an app's Host: http://{admin_host}{}{path})",
            port(headers)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(h: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(HOST, h.parse().unwrap());
        m
    }

    #[test]
    fn hints_name_the_right_host_and_keep_the_port() {
        let e = on_admin_host("/realtime/topics/chat", &host("localhost:8080"));
        assert!(
            e.message
                .contains("http://<slug>.localhost:8080/realtime/topics/chat"),
            "{}",
            e.message
        );
        assert_eq!(
            on_admin_host("/nope", &host("localhost")).message,
            "route not found"
        );
        let e = on_app_host("/api/v1/apps", &host("demo.localhost:9000"), "localhost").unwrap();
        assert!(e
            .message
            .contains("admin API is served on an admin host, not on an app's Host: http://localhost:9000/api/v1/apps"));
        assert!(on_app_host("/_/", &host("demo.localhost"), "localhost")
            .unwrap()
            .message
            .contains("the dashboard"));
        assert!(on_app_host("/api/v10", &host("x"), "localhost").is_none());
        assert!(on_app_host("/items", &host("x"), "localhost").is_none());
    }
}
