//! Response bodies a rejection can be written into.

use bytes::Bytes;
use http_body_util::combinators::{BoxBody, UnsyncBoxBody};
use http_body_util::{BodyExt, Full};

/// A response body type the layer can answer a rejection in: the wrapped service's own body
/// type, so the layer does not change the service's response type. Implemented for `String`,
/// `Full<Bytes>`, the boxed bodies of `http-body-util`, axum's and tonic's bodies; implement it
/// for your own body type.
pub trait RejectionBody: Sized {
    /// A body holding `text` (empty for gRPC).
    fn from_text(text: String) -> Self;
}

impl RejectionBody for String {
    fn from_text(text: String) -> Self {
        text
    }
}

impl RejectionBody for Full<Bytes> {
    fn from_text(text: String) -> Self {
        Full::new(Bytes::from(text))
    }
}

impl<E: 'static> RejectionBody for BoxBody<Bytes, E> {
    fn from_text(text: String) -> Self {
        Full::new(Bytes::from(text)).map_err(|never| match never {}).boxed()
    }
}

impl<E: 'static> RejectionBody for UnsyncBoxBody<Bytes, E> {
    fn from_text(text: String) -> Self {
        Full::new(Bytes::from(text)).map_err(|never| match never {}).boxed_unsync()
    }
}

#[cfg(feature = "axum")]
impl RejectionBody for axum::body::Body {
    fn from_text(text: String) -> Self {
        Self::from(text)
    }
}

#[cfg(feature = "tonic")]
impl RejectionBody for tonic::body::Body {
    fn from_text(text: String) -> Self {
        if text.is_empty() { Self::empty() } else { Self::new(text) }
    }
}
