//! Admin keys: bearer credentials for the control plane.
//!
//! A key reads `pk_<id>_<secret>`: `id` (16 hex characters) names the row, `secret` is 32
//! random bytes in base64url. Only SHA-256 of the secret is stored; a plain hash is enough
//! because the secret has 256 bits of entropy (nothing to brute-force, unlike a password).
//! Verification compares hashes in constant time, and hashes a dummy when the id is unknown
//! so that "no such key" and "wrong secret" take the same time and give the same answer.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::capability::Capability;
use crate::ids::AppId;
use crate::ValidationError;

const PREFIX: &str = "pk_";

/// An admin key as stored, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminKey {
    pub id: String,
    pub capabilities: Vec<Capability>,
    /// When set, the key can touch only this app.
    pub app_id: Option<AppId>,
    pub label: String,
    pub created_at: DateTime<Utc>,
    /// When a request last authenticated with it (recorded at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
}

impl AdminKey {
    /// Whether this key holds `cap` (directly or through `InstanceAdmin`).
    pub fn has(&self, cap: Capability) -> bool {
        self.capabilities
            .iter()
            .any(|c| *c == cap || *c == Capability::InstanceAdmin)
    }

    /// Whether this key may see `app` at all. An app-bound key sees only its own app.
    pub fn can_see(&self, app: &AppId) -> bool {
        self.app_id.as_ref().is_none_or(|bound| bound == app)
    }
}

/// A freshly generated key: the plaintext (shown once) and what gets stored.
pub struct GeneratedKey {
    pub id: String,
    pub plaintext: String,
    pub secret_hash: Vec<u8>,
}

impl std::fmt::Debug for GeneratedKey {
    // Never print the plaintext, even in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

pub fn generate() -> GeneratedKey {
    let mut rng = rand::rng();
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut id);
    rng.fill_bytes(&mut secret);
    let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let secret = URL_SAFE_NO_PAD.encode(secret);
    GeneratedKey {
        plaintext: format!("{PREFIX}{id}_{secret}"),
        secret_hash: hash_secret(&secret).to_vec(),
        id,
    }
}

/// A new key ready to store: validated, generated, with its plaintext to show once.
pub struct IssuedKey {
    pub key: AdminKey,
    pub secret_hash: Vec<u8>,
    pub plaintext: String,
}

/// Validates a key request and generates the key. The one place the rules live: at least
/// one capability, `InstanceAdmin` never bound to an app, a short printable label.
pub fn issue(
    capabilities: Vec<Capability>,
    app_id: Option<AppId>,
    label: String,
) -> Result<IssuedKey, ValidationError> {
    if capabilities.is_empty() {
        return Err(ValidationError::new(
            "capabilities",
            "at least one is required",
        ));
    }
    if app_id.is_some() && capabilities.contains(&Capability::InstanceAdmin) {
        return Err(ValidationError::new(
            "capabilities",
            "InstanceAdmin cannot be bound to one app",
        ));
    }
    if label.chars().count() > 200 || label.chars().any(char::is_control) {
        return Err(ValidationError::new(
            "label",
            "at most 200 characters, no control characters",
        ));
    }
    let generated = generate();
    Ok(IssuedKey {
        key: AdminKey {
            id: generated.id,
            capabilities,
            app_id,
            label,
            created_at: Utc::now(),
            last_used_at: None,
        },
        secret_hash: generated.secret_hash,
        plaintext: generated.plaintext,
    })
}

impl std::fmt::Debug for IssuedKey {
    // Never print the plaintext, even in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedKey")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// Splits a presented key into `(id, secret)`; `None` when it does not have the shape of a key.
pub fn parse(presented: &str) -> Option<(&str, &str)> {
    let rest = presented.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    // Folded without an early exit (a vector loop): this runs on every admin request.
    let id_ok = id.len() == 16 && id.bytes().fold(true, |ok, b| ok & b.is_ascii_hexdigit());
    let secret_ok = secret.len() == 43
        && secret.bytes().fold(true, |ok, b| {
            ok & (b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    (id_ok && secret_ok).then_some((id, secret))
}

pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Constant-time check of a presented secret against a stored hash. With `stored = None`
/// (unknown key id) it still hashes and compares, then fails.
pub fn verify(secret: &str, stored: Option<&[u8]>) -> bool {
    let presented = hash_secret(secret);
    let dummy = [0u8; 32];
    let (against, known) = match stored {
        Some(h) => (h, true),
        None => (&dummy[..], false),
    };
    bool::from(presented[..].ct_eq(against)) && known
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_verify() {
        let k = generate();
        let (id, secret) = parse(&k.plaintext).expect("shape");
        assert_eq!(id, k.id);
        assert!(verify(secret, Some(&k.secret_hash)));
        let other = generate();
        assert!(!verify(secret, Some(&other.secret_hash)));
        assert!(!verify(secret, None));
        assert_ne!(k.plaintext, other.plaintext);
        assert!(!format!("{k:?}").contains(secret));
    }

    #[test]
    fn issuing_enforces_the_rules() {
        let app = Some(AppId("a".into()));
        assert!(issue(vec![], None, String::new()).is_err());
        assert!(issue(vec![Capability::InstanceAdmin], app.clone(), String::new()).is_err());
        assert!(issue(vec![Capability::AppRead], None, "a\u{1}".into()).is_err());
        assert!(issue(vec![Capability::AppRead], None, "x".repeat(201)).is_err());
        let k = issue(vec![Capability::AppRead], app.clone(), "ci".into()).unwrap();
        assert_eq!(k.key.app_id, app);
        assert!(verify(parse(&k.plaintext).unwrap().1, Some(&k.secret_hash)));
        assert!(!format!("{k:?}").contains(&k.plaintext));
    }

    #[test]
    fn malformed_keys_do_not_parse() {
        let k = generate().plaintext;
        for bad in [
            "",
            "pk_",
            "Bearer x",
            &k[..k.len() - 1],
            &k.replacen("pk_", "sk_", 1),
            &format!("{k}x"),
            "pk_zzzzzzzzzzzzzzzz_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn capabilities_and_app_binding() {
        let app = AppId("a".into());
        let key = AdminKey {
            id: "k".into(),
            capabilities: vec![Capability::AppRead],
            app_id: Some(app.clone()),
            label: String::new(),
            created_at: Utc::now(),
            last_used_at: None,
        };
        assert!(key.has(Capability::AppRead));
        assert!(!key.has(Capability::AppWrite));
        assert!(key.can_see(&app));
        assert!(!key.can_see(&AppId("b".into())));
        let admin = AdminKey {
            capabilities: vec![Capability::InstanceAdmin],
            app_id: None,
            ..key
        };
        assert!(admin.has(Capability::SecretsManage));
        assert!(admin.can_see(&AppId("b".into())));
    }
}
