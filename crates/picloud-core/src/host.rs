//! Host header normalisation: the key every data-plane request is routed by.
//!
//! `Demo.Example.COM.:8080`, `demo.example.com` and `demo.example.com.` are one host. Ports
//! are dropped (one app answers on every port the server listens on), case is folded and a
//! trailing dot (the DNS root) is removed. Anything that is not a valid DNS name or IP
//! literal is rejected, so garbage never reaches a cache or a query.

use crate::ValidationError;

/// A normalised host name: lowercase, no port, no trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Host(String);

/// The suffix under which every app also answers as `<slug>.localhost`.
pub const LOCALHOST_SUFFIX: &str = ".localhost";

impl Host {
    /// Parses the value of a Host header (or the authority of a URI).
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let err = |m: &str| Err(ValidationError::new("host", m));
        let raw = raw.trim();
        if raw.is_empty() {
            return err("is empty");
        }
        if raw.len() > 300 {
            return err("is too long");
        }
        let (name, port) = if let Some(rest) = raw.strip_prefix('[') {
            // IPv6 literal: `[::1]` or `[::1]:8080`.
            let Some((addr, after)) = rest.split_once(']') else {
                return err("has an unterminated IPv6 literal");
            };
            if addr.parse::<std::net::Ipv6Addr>().is_err() {
                return err("is not a valid IPv6 address");
            }
            let port = match after {
                "" => None,
                p => match p.strip_prefix(':') {
                    Some(p) => Some(p),
                    None => return err("has garbage after the IPv6 literal"),
                },
            };
            (format!("[{}]", addr.to_ascii_lowercase()), port)
        } else {
            match raw.rsplit_once(':') {
                Some((name, port)) => (name.to_ascii_lowercase(), Some(port)),
                None => (raw.to_ascii_lowercase(), None),
            }
        };
        if let Some(port) = port {
            if port.is_empty() || port.len() > 5 || port.parse::<u16>().is_err() {
                return err("has an invalid port");
            }
        }
        if name.starts_with('[') {
            return Ok(Self(name));
        }
        let name = name.strip_suffix('.').unwrap_or(&name);
        validate_dns_name(name)?;
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For `<slug>.localhost`, the slug part (still to be validated as a slug).
    pub fn localhost_label(&self) -> Option<&str> {
        self.0
            .strip_suffix(LOCALHOST_SUFFIX)
            .filter(|l| !l.is_empty() && !l.contains('.'))
    }

    /// True for `localhost` and anything under `.localhost`, which are reserved for the
    /// built-in `<slug>.localhost` names and cannot be registered as custom domains.
    pub fn is_localhost(&self) -> bool {
        self.0 == "localhost" || self.0.ends_with(LOCALHOST_SUFFIX)
    }

    /// For values read back from the database, which were normalised when written.
    pub fn from_trusted(s: String) -> Self {
        Self(s)
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn validate_dns_name(name: &str) -> Result<(), ValidationError> {
    let err = |m: &str| Err(ValidationError::new("host", m));
    if name.is_empty() || name.len() > 253 {
        return err("must be 1 to 253 characters");
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return err("has an empty or over-long label");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return err("may contain only letters, digits, '-' and '.' (use punycode for IDNs)");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return err("has a label that starts or ends with '-'");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_port_and_trailing_dot_are_normalised_away() {
        for raw in [
            "demo.example.com",
            "Demo.Example.COM",
            "demo.example.com.",
            "demo.example.com:8080",
            "DEMO.example.com.:443",
            "  demo.example.com ",
        ] {
            assert_eq!(
                Host::parse(raw).unwrap().as_str(),
                "demo.example.com",
                "{raw}"
            );
        }
    }

    #[test]
    fn ip_literals_are_hosts() {
        assert_eq!(Host::parse("127.0.0.1:8080").unwrap().as_str(), "127.0.0.1");
        assert_eq!(Host::parse("[::1]:8080").unwrap().as_str(), "[::1]");
        assert_eq!(Host::parse("[::1]").unwrap().as_str(), "[::1]");
    }

    #[test]
    fn garbage_is_rejected() {
        for bad in [
            "",
            "   ",
            "a..b",
            "exa mple.com",
            "example.com:",
            "example.com:99999",
            "example.com:80:80",
            "[::1",
            "[zz]:80",
            "[::1]x",
            "ex_ample.com",
            "-bad.com",
            "bad-.com",
            "ünicode.com",
            "a/b",
            &format!("{}.com", "a".repeat(64)),
        ] {
            assert!(Host::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn localhost_labels() {
        let h = Host::parse("Demo.localhost:8080").unwrap();
        assert_eq!(h.localhost_label(), Some("demo"));
        assert!(h.is_localhost());
        assert_eq!(
            Host::parse("a.b.localhost").unwrap().localhost_label(),
            None
        );
        assert_eq!(Host::parse("localhost").unwrap().localhost_label(), None);
        assert!(!Host::parse("localhost.example.com").unwrap().is_localhost());
    }
}
