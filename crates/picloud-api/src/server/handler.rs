//! What a connection runs its requests through: [`crate::service::HttpService`] in
//! production; any router in this module's tests.

use axum::body::Body;
use axum::http::{Request, Response};

pub(crate) trait Handler:
    tower::Service<
        Request<Body>,
        Response = Response<Body>,
        Error = std::convert::Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> Handler for S where
    S: tower::Service<
            Request<Body>,
            Response = Response<Body>,
            Error = std::convert::Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + Sync
        + 'static
{
}
