//! The built single-page app: files of `dist/` with their content types,
//! brotli or gzip (a precompressed `.br` / `.gz` beside a file when there is
//! one, else compressed on the fly as the client's `Accept-Encoding` asks),
//! and `index.html` for client-side routes.

use std::path::{Path, PathBuf};

use axum::Router;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tower_http::compression::CompressionLayer;
use tower_http::services::ServeDir;

/// A router serving `dist`: existing files as they are (content type from
/// the extension, `.wasm` included), any other path without an extension as
/// `index.html` (a client route, e.g. `/chat/lobby` or `/dashboard`), and 404
/// for missing assets (`/missing.js`). Responses are brotli- or
/// gzip-compressed as `Accept-Encoding` asks.
pub fn router(dist: &Path) -> Router {
    let index = dist.join("index.html");
    let fallback = get(move |uri: Uri| spa_index(uri, index.clone()));
    let files = ServeDir::new(dist)
        .append_index_html_on_directories(true)
        .precompressed_br()
        .precompressed_gzip()
        .fallback(fallback);
    Router::new()
        .fallback_service(files)
        .layer(CompressionLayer::new())
}

async fn spa_index(uri: Uri, index: PathBuf) -> Response {
    // `/app.js` missing is a 404; `/chat/lobby` is a route of the app.
    // A room name may hold a dot: everything under `/chat/` is a route.
    let last = uri.path().rsplit('/').next().unwrap_or_default();
    if last.contains('.') && !uri.path().starts_with("/chat/") {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    }
    match tokio::fs::read_to_string(&index).await {
        Ok(html) => {
            let mut res = Html(html).into_response();
            // The shell must be revalidated, or a deploy is not seen.
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            res
        }
        Err(_) => (
            StatusCode::NOT_FOUND,
            "the app is not built: run trunk build (or pass --dist)",
        )
            .into_response(),
    }
}
