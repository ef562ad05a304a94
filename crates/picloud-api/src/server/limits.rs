//! The limits every connection keeps, whichever path serves it.

use std::time::Duration;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// The largest body a hand reader reads itself (larger go to hyper and the router's
    /// `413`).
    pub body: usize,
    /// From a request's first byte until its head is in (the keep-alive loop, which reads
    /// bodies first: until the whole request is); then `408` and close.
    pub request: Duration,
    /// Silence with no request in flight after which a connection is closed.
    pub idle: Duration,
}
