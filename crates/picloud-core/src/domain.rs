//! Custom domains: Host names that resolve to one app.

use chrono::{DateTime, Utc};

use crate::host::Host;
use crate::ids::AppId;
use crate::ValidationError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    pub id: String,
    pub app_id: AppId,
    pub host: Host,
    pub created_at: DateTime<Utc>,
}

/// Parses a host an app wants to claim. Ports are not part of a domain, and `*.localhost`
/// is reserved for the built-in `<slug>.localhost` names.
pub fn parse_domain_host(raw: &str) -> Result<Host, ValidationError> {
    if raw.contains(':') && !raw.starts_with('[') {
        return Err(ValidationError::new(
            "host",
            "must not include a port: a domain answers on every port",
        ));
    }
    let host = Host::parse(raw)?;
    if host.is_localhost() {
        return Err(ValidationError::new(
            "host",
            "localhost and *.localhost are reserved (every app answers on <slug>.localhost)",
        ));
    }
    Ok(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_normalised_and_reserved_names_refused() {
        assert_eq!(
            parse_domain_host("Shop.Example.com.").unwrap().as_str(),
            "shop.example.com"
        );
        assert!(parse_domain_host("shop.example.com:8080").is_err());
        assert!(parse_domain_host("demo.localhost").is_err());
        assert!(parse_domain_host("localhost").is_err());
    }
}
