//! Apps: the tenants. Everything else in PiCloud belongs to exactly one app.

use chrono::{DateTime, Utc};

use crate::ids::AppId;
use crate::ValidationError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub id: AppId,
    pub slug: Slug,
    pub name: String,
    /// Longest lifetime a subscriber token of this app may have, in seconds: minted or
    /// verified, whoever signed it.
    pub max_token_ttl_secs: i64,
    /// A single-page app: a `GET` on its Host for a path with no route and no static file
    /// answers its static `index.html`.
    pub static_spa: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The app a data-plane request belongs to, as resolved from its Host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppRef {
    pub id: AppId,
    pub slug: Slug,
}

/// A validated app slug: lowercase `[a-z0-9-]`, 3–63 characters, no leading or trailing
/// hyphen. 63 because a slug is also a DNS label (`<slug>.localhost`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slug(String);

impl Slug {
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        let err = |m: &str| Err(ValidationError::new("slug", m));
        if input.len() < 3 || input.len() > 63 {
            return err("must be 3 to 63 characters");
        }
        if !input
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return err("may contain only lowercase letters, digits and '-'");
        }
        if input.starts_with('-') || input.ends_with('-') {
            return err("must not start or end with '-'");
        }
        Ok(Self(input.to_owned()))
    }

    /// For values read back from the database, which were validated when written.
    pub fn from_trusted(s: String) -> Self {
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Slug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Validated app display name: 1–200 characters, no control characters.
pub fn validate_name(name: &str) -> Result<String, ValidationError> {
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.chars().count() > 200 {
        return Err(ValidationError::new("name", "must be 1 to 200 characters"));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(ValidationError::new(
            "name",
            "must not contain control characters",
        ));
    }
    Ok(trimmed.to_owned())
}

#[derive(Debug, Clone)]
pub struct NewApp {
    pub slug: Slug,
    pub name: String,
}

/// A partial update: `None` leaves the field as it is.
#[derive(Debug, Clone, Default)]
pub struct AppPatch {
    pub slug: Option<Slug>,
    pub name: Option<String>,
    pub max_token_ttl_secs: Option<i64>,
    pub static_spa: Option<bool>,
}

/// A subscriber token's lifetime when the app says nothing else: 30 days.
pub const DEFAULT_MAX_TOKEN_TTL_SECS: i64 = 30 * 24 * 3600;
/// The most an app may allow: a year.
pub const MAX_TOKEN_TTL_LIMIT_SECS: i64 = 365 * 24 * 3600;

/// Checks an app's maximum token lifetime setting.
pub fn validate_max_token_ttl(secs: i64) -> Result<i64, ValidationError> {
    if (60..=MAX_TOKEN_TTL_LIMIT_SECS).contains(&secs) {
        Ok(secs)
    } else {
        Err(ValidationError::new(
            "max_token_ttl_secs",
            "must be 60 to 31536000 (a year)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_follow_the_dns_label_rules() {
        for ok in ["abc", "demo", "my-app-2", &"a".repeat(63)] {
            assert!(Slug::parse(ok).is_ok(), "{ok} should be valid");
        }
        for bad in [
            "ab",
            &"a".repeat(64),
            "Demo",
            "my_app",
            "-abc",
            "abc-",
            "a.b.c",
            "ünï",
            "",
        ] {
            assert!(Slug::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(validate_name("  Demo  ").unwrap(), "Demo");
        assert!(validate_name("   ").is_err());
        assert!(validate_name(&"x".repeat(201)).is_err());
        assert!(validate_name("a\nb").is_err());
    }
}
