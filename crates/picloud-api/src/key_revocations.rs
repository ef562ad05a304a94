//! Ends an admin key's open streams (topic tails, the stats stream) when the key is revoked
//! through this node: the key check happens once, when a stream opens, and a stream may
//! live for hours.

use std::sync::Mutex;

use hashbrown::HashMap;
use tokio_util::sync::CancellationToken;

/// One token per key that has opened a stream here, fired and forgotten on revocation.
#[derive(Default)]
pub struct KeyRevocations(Mutex<HashMap<String, CancellationToken>>);

impl KeyRevocations {
    /// Fires when `key` (an admin key id) is revoked through this node.
    pub fn of(&self, key: &str) -> CancellationToken {
        self.0
            .lock()
            .expect("revocations lock")
            .entry_ref(key)
            .or_default()
            .clone()
    }

    pub fn revoke(&self, key: &str) {
        if let Some(fired) = self.0.lock().expect("revocations lock").remove(key) {
            fired.cancel();
        }
    }
}
