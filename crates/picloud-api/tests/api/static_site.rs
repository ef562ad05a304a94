//! An app's static site: files uploaded through the admin API and served on the app's Host
//! for GET/HEAD paths no route matches — content types, ETag and 304, gzip and brotli,
//! directory indexes, the single-page fallback, routes first, paths that cannot escape,
//! the per-app quota, isolation between apps, and blobs removed with their files.

use std::io::Read;

use picloud_api::ApiConfig;
use picloud_core::capability::Capability;
use picloud_store::Backend;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::support::{assert_error, raw_http, send, TestServer};

both_backends!(a_static_site_is_served_on_the_apps_host);

impl TestServer {
    pub async fn put_static(&self, app: &str, path: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
        send(
            self.admin(Method::PUT, &format!("/api/v1/apps/{app}/static/{path}"))
                .body(bytes),
        )
        .await
    }

    async fn blob_files(&self, app_id: &str) -> usize {
        let dir = self
            ._db
            .as_ref()
            .unwrap()
            .data_dir()
            .join("files")
            .join(app_id);
        std::fs::read_dir(dir).map_or(0, |d| d.count())
    }
}

fn script_bundle() -> Vec<u8> {
    (0..400)
        .map(|i| format!("export function f{i}(x) {{ return x + {i}; }}\n"))
        .collect::<String>()
        .into_bytes()
}

async fn a_static_site_is_served_on_the_apps_host(backend: Backend) {
    let s = TestServer::start_with(
        backend,
        ApiConfig {
            static_quota_bytes: 64 * 1024,
            ..ApiConfig::default()
        },
    )
    .await;
    let demo = s.create_app("demo").await;
    let demo_id = demo["id"].as_str().unwrap();
    let index = b"<!doctype html><title>demo</title><p>hello</p>".to_vec();
    let (status, put) = s.put_static("demo", "index.html", index.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{put}");
    assert_eq!(put["content_type"], "text/html; charset=utf-8");
    assert_eq!(put["size"], index.len());
    let bundle = script_bundle();
    let (_, js) = s.put_static("demo", "assets/app.js", bundle.clone()).await;
    assert_eq!(
        (js["gzip"].clone(), js["brotli"].clone()),
        (json!(true), json!(true)),
        "{js}"
    );
    let png = vec![0x89, b'P', b'N', b'G', 0, 1, 2, 3];
    s.put_static("demo", "logo.png", png.clone()).await;
    s.put_static("demo", "docs/index.html", b"<p>docs</p>".to_vec())
        .await;

    // `/` is index.html: its type, validator and caching headers.
    let res = s.app_get("demo", "/").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["cache-control"], "no-cache");
    assert_eq!(h["vary"], "Accept-Encoding");
    let etag = h["etag"].to_str().unwrap().to_owned();
    assert_eq!(res.bytes().await.unwrap().as_ref(), index.as_slice());
    let again = s
        .app_get("demo", "/index.html")
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert!(again.bytes().await.unwrap().is_empty());

    // Compressed variants for clients that accept them, each with its own validator.
    let plain = s.app_get("demo", "/assets/app.js").send().await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    assert_eq!(
        plain.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(plain.bytes().await.unwrap().as_ref(), bundle.as_slice());
    let br = s
        .app_get("demo", "/assets/app.js")
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .unwrap();
    assert_eq!(br.headers()["content-encoding"], "br");
    let br_tag = br.headers()["etag"].to_str().unwrap().to_owned();
    let body = br.bytes().await.unwrap();
    assert!(body.len() < bundle.len() / 2);
    let mut out = Vec::new();
    brotli::Decompressor::new(&body[..], 4096)
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, bundle);
    let gz = s
        .app_get("demo", "/assets/app.js")
        .header("accept-encoding", "gzip, br;q=0")
        .send()
        .await
        .unwrap();
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    assert_ne!(gz.headers()["etag"].to_str().unwrap(), br_tag);
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&gz.bytes().await.unwrap()[..])
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, bundle);
    // Binary types are stored as they are.
    let logo = s
        .app_get("demo", "/logo.png")
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .unwrap();
    assert_eq!(logo.headers()["content-type"], "image/png");
    assert!(logo.headers().get("content-encoding").is_none());
    assert_eq!(logo.bytes().await.unwrap().as_ref(), png.as_slice());
    // HEAD: the headers, no body.
    let head = s
        .app_req("demo", Method::HEAD, "/assets/app.js")
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(
        head.headers()["content-length"],
        bundle.len().to_string().as_str()
    );

    // The admin API reads a file back as uploaded (what `picloud app export` saves).
    let raw = s
        .admin(Method::GET, "/api/v1/apps/demo/static/assets/app.js")
        .send()
        .await
        .unwrap();
    assert_eq!(
        raw.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(raw.bytes().await.unwrap().as_ref(), bundle.as_slice());

    // Directories answer their index.html.
    for path in ["/docs", "/docs/"] {
        let res = s.app_get("demo", path).send().await.unwrap();
        assert_eq!(res.text().await.unwrap(), "<p>docs</p>", "{path}");
    }
    // Raw requests (no client normalises the dots away first): nothing outside the app's
    // files answers, whatever the spelling.
    for bad in [
        "/../index.html",
        "/%2e%2e/index.html",
        "/assets/..%2F..%2Findex.html",
        "/./logo.png",
        "/assets//app.js",
        "/%2Fetc%2Fpasswd",
    ] {
        let request = format!(
            "GET {bad} HTTP/1.1\r\nHost: demo.localhost:{}\r\nConnection: close\r\n\r\n",
            s.port
        );
        let (status, _) = raw_http(s.port, request.as_bytes()).await;
        assert!(!status.contains(" 200 "), "{bad}: {status}");
    }
    // Unknown paths: 404, until the app is a single-page app (extension-less paths only).
    assert_eq!(
        s.app_get("demo", "/rooms/42")
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let (status, patched) = send(
        s.admin(Method::PATCH, "/api/v1/apps/demo")
            .json(&json!({"static_spa": true})),
    )
    .await;
    assert_eq!(
        (status, patched["static_spa"].clone()),
        (StatusCode::OK, json!(true))
    );
    let spa = s.app_get("demo", "/rooms/42").send().await.unwrap();
    assert_eq!(spa.status(), StatusCode::OK);
    assert_eq!(spa.bytes().await.unwrap().as_ref(), index.as_slice());
    assert_eq!(
        s.app_get("demo", "/missing.js")
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    // Routes come first; other methods never reach the files.
    s.deploy("demo", "home", "\"from a script\"").await;
    s.route("demo", "GET", "/index.html", "home").await;
    let routed = s.app_get("demo", "/index.html").send().await.unwrap();
    assert_eq!(
        routed.json::<Value>().await.unwrap(),
        json!("from a script")
    );
    let post = s
        .app_req("demo", Method::POST, "/logo.png")
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), StatusCode::NOT_FOUND);

    // Paths that could leave the app are refused at upload.
    for bad in ["..%2Fetc%2Fpasswd", "a%2F..%2F..%2Fx", ".hidden%2F", "a b"] {
        let (status, body) = s.put_static("demo", bad, b"x".to_vec()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
    }

    // The quota (64 KiB here): a file that would pass it is refused and nothing changes;
    // replacing a file counts its new size only.
    let (_, before) = send(s.admin(Method::GET, "/api/v1/apps/demo/static")).await;
    let total = before["total_bytes"].as_u64().unwrap();
    assert_eq!(before["quota_bytes"], 64 * 1024);
    assert_eq!(before["files"].as_array().unwrap().len(), 4);
    let big = vec![b'x'; 64 * 1024 - total as usize + 1];
    assert_error(
        &s.put_static("demo", "big.bin", big).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "quota_exceeded",
    );
    let (_, after) = send(s.admin(Method::GET, "/api/v1/apps/demo/static")).await;
    assert_eq!(after, before);
    let blobs = s.blob_files(demo_id).await;
    assert_eq!(
        blobs,
        4 + 2,
        "the bundle's two variants; nothing of the refused file"
    );
    let (status, _) = s.put_static("demo", "assets/app.js", bundle.clone()).await;
    assert_eq!(status, StatusCode::OK, "replaced");
    assert_eq!(
        s.blob_files(demo_id).await,
        blobs,
        "the replaced blobs are gone"
    );

    // Another app sees none of it; a key of another app cannot touch it.
    let other = s.create_app("other").await;
    let info = s.app_get("other", "/").send().await.unwrap();
    assert_eq!(info.json::<Value>().await.unwrap()["app"], "other");
    let key = s
        .key(
            &[Capability::ScriptDeploy],
            Some(other["id"].as_str().unwrap()),
        )
        .await;
    assert_error(
        &send(
            s.with_key(&key, Method::PUT, "/api/v1/apps/demo/static/x.txt")
                .body("x"),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let reader = s.key(&[Capability::AppRead], Some(demo_id)).await;
    assert_eq!(
        send(s.with_key(&reader, Method::GET, "/api/v1/apps/demo/static"))
            .await
            .0,
        StatusCode::OK
    );
    assert_error(
        &send(
            s.with_key(&reader, Method::PUT, "/api/v1/apps/demo/static/x.txt")
                .body("x"),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );

    // Delete: gone from the Host and from disk.
    let (status, _) = send(s.admin(Method::DELETE, "/api/v1/apps/demo/static/assets/app.js")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        s.app_get("demo", "/assets/app.js")
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(s.blob_files(demo_id).await, 3);
    assert_error(
        &send(s.admin(Method::DELETE, "/api/v1/apps/demo/static/assets/app.js")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}
