//! App secrets: the HMAC keys that sign an app's subscriber tokens.

use chrono::{DateTime, Utc};
use rand::RngCore;

/// One signing key. Several may be active at once (rotation adds one, retirement ends one).
#[derive(Clone, PartialEq, Eq)]
pub struct AppSecret {
    /// Key id, carried in the token header (`kid`).
    pub kid: String,
    /// 32 random bytes.
    pub secret: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for AppSecret {
    // The key material never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppSecret")
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

impl AppSecret {
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        let mut secret = vec![0u8; 32];
        rng.fill_bytes(&mut secret);
        let mut kid = [0u8; 6];
        rng.fill_bytes(&mut kid);
        Self {
            kid: kid.iter().map(|b| format!("{b:02x}")).collect(),
            secret,
            // Millisecond precision: what the database keeps.
            created_at: DateTime::from_timestamp_millis(Utc::now().timestamp_millis())
                .unwrap_or_default(),
            retired_at: None,
        }
    }

    pub fn is_active(&self) -> bool {
        self.retired_at.is_none()
    }
}
