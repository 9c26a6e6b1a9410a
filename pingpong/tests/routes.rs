//! pingpong's routes without a socket: status codes for what is not a ping.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use pingpong::{AppState, app};
use tower::ServiceExt;

async fn status(method: Method, path: &str) -> StatusCode {
    let dir = tempfile::tempdir().unwrap();
    let state = AppState::open(&dir.path().join("c.txt")).unwrap();
    let request = Request::builder().method(method).uri(path).body(Body::empty()).unwrap();
    app(state).oneshot(request).await.unwrap().status()
}

#[tokio::test]
async fn unknown_paths_are_404_and_other_methods_405() {
    assert_eq!(status(Method::GET, "/nope").await, StatusCode::NOT_FOUND);
    assert_eq!(status(Method::POST, "/pingpong").await, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(status(Method::DELETE, "/pings").await, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(status(Method::GET, "/healthz").await, StatusCode::OK);
    assert_eq!(status(Method::GET, "/readyz").await, StatusCode::OK);
}
