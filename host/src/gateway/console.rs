//! The operator console: one static page, its scripts and its style,
//! embedded in the binary. The page holds no secret and no special access:
//! it asks the operator for a gateway token and calls the same routes as
//! any other client; what an operator token may do more is decided by the
//! gateway ([`super::operations`]), never by the page.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Every file of the console: its path, its content, its type. The
/// scripts are classic scripts sharing one scope, loaded in this order by
/// the page.
pub(super) const ASSETS: &[(&str, &str, &str)] = &[
    ("/", include_str!("console/index.html"), HTML),
    ("/console.css", include_str!("console/console.css"), CSS),
    ("/api.js", include_str!("console/api.js"), JS),
    ("/instances.js", include_str!("console/instances.js"), JS),
    ("/rules.js", include_str!("console/rules.js"), JS),
    ("/product.js", include_str!("console/product.js"), JS),
    ("/console.js", include_str!("console/console.js"), JS),
];

/// The page may load only its own scripts and style and talk only to this
/// gateway; nothing from a message can run as code.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// One of [`ASSETS`], with the headers that keep the page to itself.
pub(super) fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
