//! The `tonic` feature: the layer in front of a service answering `tonic::body::Body`, gRPC
//! statuses for rejections, and `TonicAuth` in handlers.
#![cfg(feature = "tonic")]

mod support;

use std::convert::Infallible;

use http::{Request, Response};
use keyward_tower::{KeywardLayer, TonicAuth};
use serde_json::json;
use support::*;
use tonic::Code;
use tower::{Layer, ServiceExt, service_fn};

/// What a tonic handler does: read the claims through `TonicAuth`, answer its status.
async fn handler(request: Request<()>) -> Result<Response<tonic::body::Body>, Infallible> {
    let (parts, message) = request.into_parts();
    let request = tonic::Request::from_parts(
        tonic::metadata::MetadataMap::from_headers(parts.headers),
        parts.extensions,
        message,
    );
    let mut response = Response::new(tonic::body::Body::empty());
    let (code, sub) = match request.claims::<serde_json::Value>() {
        Ok(claims) => (Code::Ok, claims["sub"].as_str().unwrap_or_default().to_owned()),
        Err(status) => (status.code(), status.message().to_owned()),
    };
    response.headers_mut().insert("grpc-status", (code as i32).into());
    response.headers_mut().insert("x-sub", sub.parse().unwrap());
    Ok(response)
}

fn grpc_request(token: Option<&str>) -> Request<()> {
    let mut request = Request::post("/orders.Orders/List").header("content-type", "application/grpc");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    request.body(()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn tonic_bodies_and_statuses() {
    let k1 = key("k1");
    let (idp, verifier) = idp_with(&[&k1]).await;
    let service = KeywardLayer::new(verifier).layer(service_fn(handler));
    let header = |r: &Response<tonic::body::Body>, name: &str| r.headers()[name].to_str().unwrap().to_owned();

    let good = token(idp.issuer(), &k1, json!({}));
    let ok = service.clone().oneshot(grpc_request(Some(&good))).await.unwrap();
    assert_eq!((header(&ok, "grpc-status"), header(&ok, "x-sub")), ("0".to_owned(), "alice".to_owned()));

    let missing = service.clone().oneshot(grpc_request(None)).await.unwrap();
    assert_eq!((missing.status().as_u16(), header(&missing, "grpc-status")), (200, "16".to_owned()));

    let expired = token(idp.issuer(), &k1, json!({"exp": NOW - 3600, "iat": NOW - 7200, "nbf": NOW - 7200}));
    let rejected = service.clone().oneshot(grpc_request(Some(&expired))).await.unwrap();
    assert_eq!(
        (header(&rejected, "grpc-status"), header(&rejected, "grpc-message")),
        ("16".to_owned(), "expired".to_owned())
    );

    // A handler without the layer in front: INTERNAL, not the client's fault.
    let bare = service_fn(handler).oneshot(grpc_request(Some(&good))).await.unwrap();
    assert_eq!(header(&bare, "grpc-status"), (Code::Internal as i32).to_string());
    assert_eq!(header(&bare, "x-sub"), "not_configured");
}
