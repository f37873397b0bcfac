//! tonic handlers: the verified token, or the `tonic::Status` to answer with.

use serde::de::DeserializeOwned;
use tonic::{Code, Status};

use crate::outcome::{AuthOutcome, Authenticated};
use crate::reject::Rejection;

/// Reads what [`crate::KeywardLayer`] recorded on a tonic request.
pub trait TonicAuth {
    /// The verified token; `UNAUTHENTICATED` without one (`INTERNAL`, and an error log, when no
    /// layer ran: a server bug).
    fn authenticated(&self) -> Result<&Authenticated, Status>;

    /// The verified claims deserialised into `C`; claims that do not fit are `UNAUTHENTICATED`
    /// (`invalid_claim`).
    fn claims<C: DeserializeOwned>(&self) -> Result<C, Status> {
        let auth = self.authenticated()?;
        auth.verified().claims_as::<C>().map_err(|e| status(&Rejection::InvalidToken(e)))
    }
}

impl<T> TonicAuth for tonic::Request<T> {
    fn authenticated(&self) -> Result<&Authenticated, Status> {
        match self.extensions().get::<AuthOutcome>() {
            Some(AuthOutcome::Verified(auth)) => Ok(auth),
            Some(AuthOutcome::Missing) => Err(status(&Rejection::MissingToken)),
            Some(AuthOutcome::Rejected(rejection)) => Err(status(rejection)),
            None => {
                tracing::error!(
                    "a tonic handler asked for keyward claims without a KeywardLayer in front of it"
                );
                Err(status(&Rejection::NotConfigured { route: String::new() }))
            }
        }
    }
}

/// The status a rejection maps to: 16, 7, 14 or 13, with the reason code as the message.
pub(crate) fn status(rejection: &Rejection) -> Status {
    let code = match rejection {
        Rejection::MissingToken | Rejection::InvalidRequest(_) | Rejection::InvalidToken(_) => {
            Code::Unauthenticated
        }
        Rejection::InsufficientScope { .. } => Code::PermissionDenied,
        Rejection::KeysUnavailable(_) => Code::Unavailable,
        Rejection::NotConfigured { .. } => Code::Internal,
    };
    Status::new(code, rejection.code())
}

impl From<&Rejection> for Status {
    fn from(rejection: &Rejection) -> Self {
        status(rejection)
    }
}
