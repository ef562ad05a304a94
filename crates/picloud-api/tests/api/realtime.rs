//! Realtime over real sockets: publish → SSE, auth, tokens, resume, retention, bad input.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use picloud_core::capability::Capability;
use picloud_store::Backend;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::both_backends;
use crate::sse::Sse;
use crate::support::{assert_error, send, TestServer};

const WAIT: Duration = Duration::from_secs(10);

both_backends!(
    publish_then_receive_on_one_topic,
    payloads_arrive_as_written,
    one_stream_many_topics_and_resume,
    retention_gap_gets_resync_then_live,
);

async fn setup(backend: Backend) -> TestServer {
    let s = TestServer::start(backend).await;
    s.create_app("demo").await;
    s
}

/// The wire format of DESIGN §5: headers, `retry:` first, then `id:` + `event: message` +
/// one `data:` line per durable message, in order.
async fn publish_then_receive_on_one_topic(backend: Backend) {
    let s = setup(backend).await;
    s.create_topic("demo", "chat", true, "public").await;
    let mut sse = Sse::open(s.app_get("demo", "/realtime/topics/chat"))
        .await
        .unwrap();
    assert_eq!(sse.headers["content-type"], "text/event-stream");
    assert_eq!(sse.headers["cache-control"], "no-cache, no-transform");
    assert_eq!(sse.headers["x-accel-buffering"], "no");
    assert!(sse.headers.get("content-encoding").is_none());
    let first = sse.next_frame(WAIT).await.unwrap();
    assert_eq!(first.retry, Some(2000));

    for i in 1..=3 {
        assert_eq!(
            s.publish("demo", "chat", json!({"i": i, "text": "line\nbreak"}))
                .await,
            i
        );
    }
    let got = sse.messages(3).await;
    for (k, f) in got.iter().enumerate() {
        let seq = k as i64 + 1;
        assert_eq!(f.id.as_deref(), Some(seq.to_string().as_str()));
        let d = f.json();
        assert_eq!(d["topic"], "chat");
        assert_eq!(d["seq"], seq);
        assert_eq!(d["message"], json!({"i": seq, "text": "line\nbreak"}));
        assert!(d["published_at"].as_str().unwrap().ends_with('Z'));
    }
    // Ephemeral: delivered live, no id, no seq, never replayed.
    let (status, body) = send(
        s.admin(
            Method::POST,
            "/api/v1/apps/demo/topics/chat/publish?ephemeral=true",
        )
        .json(&json!({"typing": true})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert!(body.get("seq").is_none());
    let e = sse.next_event(WAIT).await.unwrap();
    assert_eq!(e.id, None);
    assert_eq!(e.json()["message"], json!({"typing": true}));
    assert_eq!(e.json()["seq"], Value::Null);

    // Resuming from 1 replays 2 and 3 only (not the ephemeral one).
    let mut again = Sse::open(
        s.app_get("demo", "/realtime/topics/chat")
            .header("last-event-id", "1"),
    )
    .await
    .unwrap();
    let replay = again.messages(2).await;
    assert_eq!(replay.iter().map(|f| f.seq()).collect::<Vec<_>>(), [2, 3]);
    assert!(
        again.next_event(Duration::from_millis(300)).await.is_none(),
        "nothing else"
    );
    // ?last_event_id= works as well (EventSource cannot set headers on the first connect).
    let mut q = Sse::open(s.app_get("demo", "/realtime/topics/chat?last_event_id=2"))
        .await
        .unwrap();
    assert_eq!(q.messages(1).await[0].seq(), 3);
}

/// A payload reaches subscribers, history and the batch endpoint's subscribers as the
/// publisher wrote it, minus the whitespace between tokens: key order, duplicate keys,
/// escapes and integers beyond 64 bits stay (they were once sorted and rounded to floats).
async fn payloads_arrive_as_written(backend: Backend) {
    let s = setup(backend).await;
    s.create_topic("demo", "raw", true, "public").await;
    let mut sse = Sse::open(s.app_get("demo", "/realtime/topics/raw"))
        .await
        .unwrap();
    let sent =
        "{ \"z\" : 12345678901234567890123 ,\n \"a\" : [ 1.50 , \"x \\\" \\u00e9\" ], \"z\" : 1 }";
    let want = r#"{"z":12345678901234567890123,"a":[1.50,"x \" \u00e9"],"z":1}"#;
    let (status, body) =
        send(s.admin_post_text("/api/v1/apps/demo/topics/raw/publish", sent)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let batch = format!(r#"{{"messages":[{{"topic":"raw","data": {sent} }}]}}"#);
    let (status, body) = send(s.admin_post_text("/api/v1/apps/demo/publish", batch)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let embedded = |f: &crate::sse::Frame| {
        let data = f.data.as_deref().expect("data");
        let at = data.find("\"message\":").expect("message field") + "\"message\":".len();
        data[at..at + want.len()].to_owned()
    };
    for f in sse.messages(2).await {
        assert_eq!(embedded(&f), want);
    }
    // History (a resume from 0) holds the same text.
    let mut replay = Sse::open(s.app_get("demo", "/realtime/topics/raw?last_event_id=0"))
        .await
        .unwrap();
    for f in replay.messages(2).await {
        assert_eq!(embedded(&f), want);
    }
}

/// The one-message publish answers the same however the request is framed (plain, on the
/// keep-alive loop's path from its bytes; chunked or escaped, through hyper and the
/// router).
#[tokio::test]
async fn publish_answers_the_same_direct_or_routed() {
    let s = setup(Backend::Sqlite).await;
    s.create_topic("demo", "p", false, "token").await;
    // A plain request.
    let (status, body) =
        send(s.admin_post_text("/api/v1/apps/demo/topics/p/publish", r#"{"n":1}"#)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["seq"], 1);
    assert_eq!(body["topic"], "p");
    // Routed: a chunked body, an escaped path segment.
    let request = format!(
        "POST /api/v1/apps/demo/topics/p/publish HTTP/1.1\r\nHost: localhost\r\n\
         Authorization: Bearer {}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n7\r\n{{\"n\":2}}\r\n0\r\n\r\n",
        s.admin_key
    );
    let (head, body) = crate::support::raw_http(s.port, request.as_bytes()).await;
    assert!(head.contains(" 201 "), "{head} {body}");
    assert!(body.contains("\"seq\":2"), "{body}");
    let (status, body) =
        send(s.admin_post_text("/api/v1/apps/%64emo/topics/p/publish", r#"{"n":3}"#)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["seq"], 3);
    // The same errors either way, in the same order: key, app, topic name, size, JSON.
    let direct = "/api/v1/apps/demo/topics/p/publish";
    let bad_key = s
        .with_key("pk_nope_nope", Method::POST, direct)
        .body(r#"{"n":0}"#);
    assert_error(
        &send(bad_key).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let missing = s.admin_post_text("/api/v1/apps/nobody/topics/p/publish", "{bad");
    assert_error(&send(missing).await, StatusCode::NOT_FOUND, "not_found");
    let bad_name = s.admin_post_text("/api/v1/apps/demo/topics/a*b/publish", "{bad");
    assert_error(
        &send(bad_name).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    );
    let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(70 * 1024));
    assert_error(
        &send(s.admin_post_text(direct, big)).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    assert_error(
        &send(s.admin_post_text(direct, "{bad")).await,
        StatusCode::BAD_REQUEST,
        "malformed_json",
    );
    let odd_query = s.admin_post_text(
        "/api/v1/apps/demo/topics/p/publish?ephemeral=maybe",
        r#"{"n":0}"#,
    );
    assert!(send(odd_query).await.0.is_client_error());
    // Ephemeral, both ways: answered 202, nothing stored.
    for path in [
        "/api/v1/apps/demo/topics/p/publish?ephemeral=true",
        "/api/v1/apps/demo/topics/p/publish?ephemeral=%74rue",
    ] {
        let (status, body) = send(s.admin_post_text(path, r#"{"n":0}"#)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{path}: {body}");
        assert!(body.get("seq").is_none());
    }
    let stored: Vec<_> = s
        .store_history("demo", "p", 10)
        .await
        .into_iter()
        .map(|m| (m.seq, m.payload.to_string()))
        .collect();
    let want: Vec<_> = (1..=3)
        .map(|n| (Some(n), format!(r#"{{"n":{n}}}"#)))
        .collect();
    assert_eq!(stored, want);
}

/// An ephemeral publish whose key and app are cached is answered without waiting (the
/// caches answer at once). Every answer the second time round, with the caches warm, is
/// the same as the first, cold time (status, code and message, in the checks' order: key,
/// app, capability, topic name, size, JSON), and each accepted message goes live.
#[tokio::test]
async fn ephemeral_publish_answers_the_same_cold_or_cached() {
    let s = setup(Backend::Sqlite).await;
    let other = s.create_app("other").await;
    s.create_topic("demo", "p", true, "public").await;
    let reader = s.key(&[Capability::AppRead], None).await;
    let elsewhere = other["id"].as_str().unwrap();
    let bound = s.key(&[Capability::AppPublish], Some(elsewhere)).await;
    // The admin key's id with another secret: the id is cached, the secret is wrong.
    let mut wrong_secret = s.admin_key.clone();
    let last = if wrong_secret.ends_with('A') {
        "B"
    } else {
        "A"
    };
    wrong_secret.replace_range(wrong_secret.len() - 1.., last);
    let mut sse = Sse::open(s.app_get("demo", "/realtime/topics/p"))
        .await
        .unwrap();
    let path = |app: &str, topic: &str| {
        format!("/api/v1/apps/{app}/topics/{topic}/publish?ephemeral=true")
    };
    let ok = path("demo", "p");
    let keyed = |key: &str, path: &str, body: &'static str| {
        s.with_key(key, Method::POST, path)
            .header("content-type", "application/json")
            .body(body)
    };
    let cases: [(StatusCode, &str); 8] = [
        (StatusCode::UNAUTHORIZED, "unauthorized"),
        (StatusCode::NOT_FOUND, "not_found"),
        (StatusCode::NOT_FOUND, "not_found"),
        (StatusCode::FORBIDDEN, "forbidden"),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        (StatusCode::BAD_REQUEST, "malformed_json"),
        (StatusCode::ACCEPTED, ""),
    ];
    let request = |i: usize| match i {
        0 => keyed(&wrong_secret, &ok, r#"{"n":0}"#),
        1 => s.admin_post_text(&path("nobody", "p"), "{bad"),
        2 => keyed(&bound, &ok, "{bad"),
        3 => keyed(&reader, &ok, "{bad"),
        4 => s.admin_post_text(&path("demo", "a*b"), "{bad"),
        // Within the request limit, over the message limit.
        5 => s.admin_post_text(&ok, format!(r#"{{"pad":"{}"}}"#, "x".repeat(65 * 1024))),
        6 => s.admin_post_text(&ok, "{bad"),
        _ => s.admin_post_text(&ok, r#"{"n":7}"#),
    };
    let mut rounds = Vec::new();
    for _ in 0..2 {
        let mut answers = Vec::new();
        for (i, (status, code)) in cases.iter().enumerate() {
            let (got, body) = send(request(i)).await;
            assert_eq!(got, *status, "case {i}: {body}");
            if got.is_client_error() {
                assert_eq!(body["error"]["code"], *code, "case {i}: {body}");
                answers.push(body);
            } else {
                assert_eq!(body["topic"], "p");
                assert!(body.get("seq").is_none(), "{body}");
            }
        }
        rounds.push(answers);
    }
    assert_eq!(rounds[0], rounds[1], "cold and cached answers differ");
    let live = sse.messages(2).await;
    for frame in live {
        let d = frame.json();
        assert_eq!(
            (d["message"].clone(), d["seq"].clone()),
            (json!({"n": 7}), Value::Null)
        );
    }
}

/// Several topics on one connection; the id carries every position, and resuming with it
/// yields exactly what was missed on each topic.
async fn one_stream_many_topics_and_resume(backend: Backend) {
    let s = setup(backend).await;
    s.create_topic("demo", "a", true, "public").await;
    s.create_topic("demo", "b.x", true, "public").await;
    let mut sse = Sse::open(s.app_get("demo", "/realtime?topic=a&topic=b.x"))
        .await
        .unwrap();
    s.publish("demo", "a", json!(1)).await;
    s.publish("demo", "b.x", json!(2)).await;
    s.publish("demo", "a", json!(3)).await;
    let got = sse.messages(3).await;
    let topics: Vec<_> = got
        .iter()
        .map(|f| f.json()["topic"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(topics, ["a", "b.x", "a"]);
    let last_id = got[2].id.clone().unwrap();
    assert_eq!(last_id, "a=2,b.x=1");
    drop(sse);

    s.publish("demo", "b.x", json!(4)).await;
    s.publish("demo", "a", json!(5)).await;
    let mut resumed = Sse::open(
        s.app_get("demo", "/realtime?topic=a&topic=b.x")
            .header("last-event-id", &last_id),
    )
    .await
    .unwrap();
    let missed = resumed.messages(2).await;
    let mut msgs: Vec<_> = missed.iter().map(|f| f.json()["message"].clone()).collect();
    msgs.sort_by_key(|v| v.as_i64());
    assert_eq!(msgs, [json!(4), json!(5)]);
    assert!(resumed
        .next_event(Duration::from_millis(300))
        .await
        .is_none());
}

/// A position older than retention gets `resync` (from/to of the lost range), then live.
async fn retention_gap_gets_resync_then_live(backend: Backend) {
    let s = setup(backend).await;
    let (status, _) = send(
        s.admin(Method::POST, "/api/v1/apps/demo/topics")
            .json(&json!({
                "name": "feed", "external_subscribable": true, "auth_mode": "public",
                "retention": {"max_messages": 5}
            })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    for i in 1..=20 {
        s.publish("demo", "feed", json!(i)).await;
    }
    // The test pruner runs every 200 ms.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let oldest = s.store_oldest("demo", "feed").await;
        if oldest == Some(16) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "pruner did not run (oldest {oldest:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut sse = Sse::open(
        s.app_get("demo", "/realtime/topics/feed")
            .header("last-event-id", "2"),
    )
    .await
    .unwrap();
    let resync = sse.next_event(WAIT).await.unwrap();
    assert_eq!(resync.event.as_deref(), Some("resync"));
    assert_eq!(
        resync.json(),
        json!({"topic": "feed", "from": 3, "to": 15, "reason": "retention"})
    );
    // It continues from the topic's end, and says so: a reconnect resumes from there.
    assert_eq!(resync.id.as_deref(), Some("20"));
    // Then it continues from now: the next publish, nothing older.
    s.publish("demo", "feed", json!(21)).await;
    let live = sse.messages(1).await;
    assert_eq!(live[0].seq(), 21);
    assert!(s.realtime_health().await["resyncs"].as_u64().unwrap() >= 1);
}

/// Who may subscribe: public topics with no token; internal and missing topics are one 404;
/// every bad token is one 401.
#[tokio::test]
async fn subscribe_authorisation() {
    let s = setup(Backend::Sqlite).await;
    s.create_app("other").await;
    s.create_topic("demo", "open", true, "public").await;
    s.create_topic("demo", "secret", true, "token").await;
    s.create_topic("demo", "internal", false, "public").await;
    s.create_topic("other", "secret", true, "token").await;

    assert!(Sse::open(s.app_get("demo", "/realtime/topics/open"))
        .await
        .is_ok());
    let missing = Sse::open(s.app_get("demo", "/realtime/topics/nope"))
        .await
        .err()
        .unwrap();
    let internal = Sse::open(s.app_get("demo", "/realtime/topics/internal"))
        .await
        .err()
        .unwrap();
    assert_eq!(missing.0, StatusCode::NOT_FOUND);
    assert_eq!(
        missing, internal,
        "internal and missing topics are indistinguishable"
    );
    let mixed = Sse::open(s.app_get("demo", "/realtime?topic=open&topic=internal"))
        .await
        .err()
        .unwrap();
    assert_eq!(mixed, missing);
    // Another app's topic is not visible on this app's Host.
    let foreign_topic = Sse::open(s.app_get("other", "/realtime/topics/open"))
        .await
        .err()
        .unwrap();
    assert_eq!(foreign_topic, missing);

    let good = s.mint("demo", &["secret"], 60).await;
    assert!(Sse::open(
        s.app_get("demo", "/realtime/topics/secret")
            .bearer_auth(&good)
    )
    .await
    .is_ok());
    assert!(
        Sse::open(s.app_get("demo", &format!("/realtime/topics/secret?token={good}")))
            .await
            .is_ok()
    );

    let wrong_topic = s.mint("demo", &["open"], 60).await;
    let foreign = s.mint("other", &["secret"], 60).await;
    let expired = forge(
        &s,
        "demo",
        json!({"topics": ["secret"], "exp": now() - 5, "iat": now() - 100}),
    )
    .await;
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    parts[2] = URL_SAFE_NO_PAD.encode(b"not the signature at all, no sir");
    let tampered_sig = parts.join(".");
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    claims["topics"] = json!(["secret", "everything"]);
    let tampered_claims = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        good.split('.').nth(2).unwrap()
    );
    let alg_none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        good.split('.').nth(1).unwrap()
    );
    let mut bodies = vec![Sse::open(s.app_get("demo", "/realtime/topics/secret"))
        .await
        .err()
        .unwrap()];
    for bad in [
        &wrong_topic,
        &foreign,
        &expired,
        &tampered_sig,
        &tampered_claims,
        &alg_none,
        &"garbage".to_owned(),
    ] {
        bodies.push(
            Sse::open(
                s.app_get("demo", "/realtime/topics/secret")
                    .bearer_auth(bad),
            )
            .await
            .err()
            .unwrap(),
        );
    }
    for b in &bodies {
        assert_eq!(b.0, StatusCode::UNAUTHORIZED, "{b:?}");
        assert_eq!(b.1, bodies[0].1, "every 401 is the same");
    }
    // A token for one topic does not open a stream that also names a token topic it lacks.
    s.create_topic("demo", "secret2", true, "token").await;
    let partial = Sse::open(
        s.app_get("demo", "/realtime?topic=secret&topic=secret2")
            .bearer_auth(&good),
    )
    .await
    .err()
    .unwrap();
    assert_eq!(partial.0, StatusCode::UNAUTHORIZED);
    let both = s.mint("demo", &["secret", "secret2"], 60).await;
    assert!(Sse::open(
        s.app_get("demo", "/realtime?topic=secret&topic=secret2")
            .bearer_auth(&both)
    )
    .await
    .is_ok());
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Mints a token with a hand-written HS256 (no JWT library): what a tenant backend in any
/// language does with the secret from a rotation. `claims` gets `aud` added.
async fn forge(s: &TestServer, app: &str, mut claims: Value) -> String {
    let (status, created) =
        send(s.admin(Method::POST, &format!("/api/v1/apps/{app}/secrets/rotate"))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (_, app_body) = send(s.admin(Method::GET, &format!("/api/v1/apps/{app}"))).await;
    claims["aud"] = app_body["id"].clone();
    sign(
        created["kid"].as_str().unwrap(),
        created["secret"].as_str().unwrap(),
        &claims,
    )
}

fn sign(kid: &str, secret_b64: &str, claims: &Value) -> String {
    let header = json!({"alg": "HS256", "typ": "JWT", "kid": kid});
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let key = URL_SAFE_NO_PAD.decode(secret_b64).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(signing_input.as_bytes());
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// A token minted outside PiCloud with the app secret verifies; after rotation the old key
/// still verifies until it is retired, then its tokens are refused.
#[tokio::test]
async fn independent_tokens_and_key_rotation() {
    let s = setup(Backend::Sqlite).await;
    s.create_topic("demo", "room.1", true, "token").await;
    let old = forge(
        &s,
        "demo",
        json!({"topics": ["room.*"], "sub": "u1", "iat": now(), "exp": now() + 600}),
    )
    .await;
    assert!(
        Sse::open(
            s.app_get("demo", "/realtime/topics/room.1")
                .bearer_auth(&old)
        )
        .await
        .is_ok(),
        "hand-made HS256 token verifies"
    );
    let old_kid = {
        let (_, list) = send(s.admin(Method::GET, "/api/v1/apps/demo/secrets")).await;
        list["secrets"][0]["kid"].as_str().unwrap().to_owned()
    };
    let newer = forge(
        &s,
        "demo",
        json!({"topics": ["room.1"], "iat": now(), "exp": now() + 600}),
    )
    .await;
    let (_, list) = send(s.admin(Method::GET, "/api/v1/apps/demo/secrets")).await;
    assert_eq!(list["secrets"].as_array().unwrap().len(), 2);
    assert!(
        !list.to_string().contains("\"secret\""),
        "key material is never listed"
    );
    // Both keys active: both tokens verify; PiCloud-minted tokens use the newest key.
    assert!(Sse::open(
        s.app_get("demo", "/realtime/topics/room.1")
            .bearer_auth(&old)
    )
    .await
    .is_ok());
    assert!(Sse::open(
        s.app_get("demo", "/realtime/topics/room.1")
            .bearer_auth(&newer)
    )
    .await
    .is_ok());
    let minted = s.mint("demo", &["room.1"], 60).await;
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(minted.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_ne!(header["kid"], old_kid.as_str());

    let retire = send(s.admin(
        Method::POST,
        &format!("/api/v1/apps/demo/secrets/{old_kid}/retire"),
    ))
    .await;
    assert_eq!(retire.0, StatusCode::NO_CONTENT);
    let refused = Sse::open(
        s.app_get("demo", "/realtime/topics/room.1")
            .bearer_auth(&old),
    )
    .await
    .err()
    .unwrap();
    assert_eq!(refused.0, StatusCode::UNAUTHORIZED);
    assert!(Sse::open(
        s.app_get("demo", "/realtime/topics/room.1")
            .bearer_auth(&newer)
    )
    .await
    .is_ok());
    assert!(Sse::open(
        s.app_get("demo", "/realtime/topics/room.1")
            .bearer_auth(&minted)
    )
    .await
    .is_ok());
    let again = send(s.admin(
        Method::POST,
        &format!("/api/v1/apps/demo/secrets/{old_kid}/retire"),
    ))
    .await;
    assert_error(&again, StatusCode::NOT_FOUND, "not_found");
}

/// Before a token expires the stream warns, then ends with `token_expired`.
#[tokio::test]
async fn token_expiry_mid_stream() {
    let s = setup(Backend::Sqlite).await;
    s.create_topic("demo", "t", true, "token").await;
    let token = s.mint("demo", &["t"], 3).await; // test warning window: 2 s
    let mut sse = Sse::open(s.app_get("demo", "/realtime/topics/t").bearer_auth(&token))
        .await
        .unwrap();
    let warn = sse.next_event(WAIT).await.unwrap();
    assert_eq!(warn.event.as_deref(), Some("token_expiring"));
    assert!(warn.json()["expires_in"].as_i64().unwrap() <= 2);
    let end = sse.next_event(WAIT).await.unwrap();
    assert_eq!(end.event.as_deref(), Some("error"));
    assert_eq!(end.json(), json!({"code": "token_expired"}));
    assert!(sse.next_frame(WAIT).await.is_none(), "the stream ends");
}

/// Keepalive comments flow on an idle stream; deleting a topic ends its streams; the hub
/// forgets channels with no subscribers.
#[tokio::test]
async fn keepalive_topic_deletion_and_channel_gc() {
    let s = setup(Backend::Sqlite).await;
    s.create_topic("demo", "t", true, "public").await;
    let mut sse = Sse::open(s.app_get("demo", "/realtime/topics/t"))
        .await
        .unwrap();
    sse.next_frame(WAIT).await.unwrap(); // retry
    sse.start_position(WAIT).await;
    let keepalive = sse.next_frame(Duration::from_secs(3)).await.unwrap();
    assert_eq!(keepalive.comment.as_deref(), Some("keepalive"));
    let h = s.realtime_health().await;
    assert_eq!(
        (
            h["connections"].as_i64(),
            h["topics_with_subscribers"].as_u64()
        ),
        (Some(1), Some(1))
    );

    assert_eq!(
        send(s.admin(Method::DELETE, "/api/v1/apps/demo/topics/t"))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let end = sse.next_event(WAIT).await.unwrap();
    assert_eq!(end.json(), json!({"code": "topic_closed", "topic": "t"}));
    assert!(sse.next_frame(WAIT).await.is_none());
    drop(sse);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let h = s.realtime_health().await;
        if h["connections"] == 0 && h["topics_with_subscribers"] == 0 && h["subscribers"] == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not released: {h}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = s.text("/metrics").await;
    assert!(text.contains("picloud_realtime_connections 0"), "{text}");
    assert!(text.contains("picloud_realtime_frames_sent_total"));
}

/// Bad input on publish and subscribe gets clear errors and stores nothing.
#[tokio::test]
async fn realtime_bad_input() {
    let s = setup(Backend::Sqlite).await;
    s.create_topic("demo", "t", true, "public").await;
    let publish = |topic: &str| {
        s.admin(
            Method::POST,
            &format!("/api/v1/apps/demo/topics/{topic}/publish"),
        )
    };
    assert_error(
        &send(publish("t").body("{not json")).await,
        StatusCode::BAD_REQUEST,
        "malformed_json",
    );
    assert_error(
        &send(publish("t").body("")).await,
        StatusCode::BAD_REQUEST,
        "malformed_json",
    );
    let big = json!({"x": "y".repeat(70 * 1024)});
    assert_error(
        &send(publish("t").json(&big)).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    for bad in ["a*b", "a..b", "%20", "x%2Fy"] {
        assert_error(
            &send(publish(bad).json(&json!(1))).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        );
    }
    let topic = send(s.admin(Method::GET, "/api/v1/apps/demo/topics/t"))
        .await
        .1;
    assert_eq!(topic["last_seq"], 0, "nothing was stored");

    for (name, code) in [
        ("*", StatusCode::UNPROCESSABLE_ENTITY),
        ("a\u{1}b", StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let got = send(
            s.admin(Method::POST, "/api/v1/apps/demo/topics")
                .json(&json!({"name": name})),
        )
        .await;
        assert_error(&got, code, "invalid_field");
    }
    let dup = send(
        s.admin(Method::POST, "/api/v1/apps/demo/topics")
            .json(&json!({"name": "t"})),
    )
    .await;
    assert_error(&dup, StatusCode::CONFLICT, "conflict");
    let bad_mode = send(
        s.admin(Method::POST, "/api/v1/apps/demo/topics")
            .json(&json!({"name": "u", "auth_mode": "open"})),
    )
    .await;
    assert_error(&bad_mode, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    let bad_retention = send(
        s.admin(Method::POST, "/api/v1/apps/demo/topics")
            .json(&json!({"name": "u", "retention": {"max_messages": 0}})),
    )
    .await;
    assert_error(
        &bad_retention,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    );

    for garbage in ["abc", "-4", "t=x", "9999999999999999999999"] {
        let got = Sse::open(
            s.app_get("demo", "/realtime/topics/t")
                .header("last-event-id", garbage),
        )
        .await
        .err()
        .unwrap();
        assert_eq!(got.0, StatusCode::BAD_REQUEST, "{garbage}");
        assert_eq!(got.1["error"]["code"], "invalid_last_event_id");
    }
    let many: Vec<_> = (0..300).map(|i| format!("topic=t{i}")).collect();
    let got = Sse::open(s.app_get("demo", &format!("/realtime?{}", many.join("&"))))
        .await
        .err()
        .unwrap();
    assert_eq!(got.0, StatusCode::BAD_REQUEST);
    assert_eq!(got.1["error"]["code"], "too_many_topics");
    let none = Sse::open(s.app_get("demo", "/realtime"))
        .await
        .err()
        .unwrap();
    assert_eq!(none.1["error"]["code"], "invalid_topic");
    let bad_name = Sse::open(s.app_get("demo", "/realtime/topics/a*"))
        .await
        .err()
        .unwrap();
    assert_eq!(bad_name.1["error"]["code"], "invalid_topic");

    let bad_mint = send(
        s.admin(Method::POST, "/api/v1/apps/demo/tokens")
            .json(&json!({"topics": [], "ttl_secs": 60})),
    )
    .await;
    assert_error(&bad_mint, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    let bad_ttl = send(
        s.admin(Method::POST, "/api/v1/apps/demo/tokens")
            .json(&json!({"topics": ["t"], "ttl_secs": 0})),
    )
    .await;
    assert_error(&bad_ttl, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
}

/// A front end on another origin subscribes with `fetch` and a bearer token: the preflight
/// is answered, the stream carries the CORS header, and no credentials are ever allowed.
#[tokio::test]
async fn streams_answer_cors_for_other_origins() {
    let s = setup(Backend::Sqlite).await;
    s.create_topic("demo", "chat", true, "token").await;
    let mut pre = s
        .app_get("demo", "/realtime/topics/chat")
        .header("origin", "https://front.example")
        .header("access-control-request-method", "GET")
        .header(
            "access-control-request-headers",
            "authorization,last-event-id",
        )
        .build()
        .unwrap();
    *pre.method_mut() = Method::OPTIONS;
    let res = reqwest::Client::new().execute(pre).await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let h = res.headers();
    assert_eq!(h["access-control-allow-origin"], "*");
    let allowed = h["access-control-allow-headers"].to_str().unwrap();
    assert!(allowed.contains("authorization") && allowed.contains("last-event-id"));
    assert!(h.get("access-control-allow-credentials").is_none());

    let token = s.mint("demo", &["chat"], 60).await;
    let mut sse = Sse::open(
        s.app_get("demo", "/realtime/topics/chat")
            .header("origin", "https://front.example")
            .bearer_auth(&token),
    )
    .await
    .unwrap();
    assert_eq!(sse.headers["access-control-allow-origin"], "*");
    s.publish("demo", "chat", json!("hi")).await;
    assert_eq!(sse.messages(1).await[0].json()["message"], "hi");
}

/// A stream announces its position before any message, and resync frames carry the
/// position past the hole: a client that drops before its first message, or right after a
/// resync, resumes without losing what was published meanwhile.
#[tokio::test]
async fn positions_before_messages_and_after_resync_lose_nothing() {
    let s = setup(Backend::Sqlite).await;
    s.create_topic("demo", "a", true, "public").await;
    s.create_topic("demo", "b", true, "public").await;
    s.publish("demo", "a", json!(0)).await;

    let mut one = Sse::open(s.app_get("demo", "/realtime/topics/a"))
        .await
        .unwrap();
    assert_eq!(one.start_position(WAIT).await, "1");
    let mut many = Sse::open(s.app_get("demo", "/realtime?topic=b&topic=a"))
        .await
        .unwrap();
    assert_eq!(many.start_position(WAIT).await, "a=1,b=0");
    drop((one, many)); // gone before any message

    s.publish("demo", "a", json!(1)).await;
    s.publish("demo", "b", json!(2)).await;
    let mut one = Sse::open(
        s.app_get("demo", "/realtime/topics/a")
            .header("last-event-id", "1"),
    )
    .await
    .unwrap();
    assert_eq!(one.messages(1).await[0].json()["message"], 1);
    let mut many = Sse::open(
        s.app_get("demo", "/realtime?topic=a&topic=b")
            .header("last-event-id", "a=1,b=0"),
    )
    .await
    .unwrap();
    let mut got: Vec<_> = many
        .messages(2)
        .await
        .iter()
        .map(|f| f.json()["message"].as_i64().unwrap())
        .collect();
    got.sort();
    assert_eq!(got, [1, 2]);

    // A position beyond the topic's end: resync, and its id is the topic's end.
    let mut ahead = Sse::open(
        s.app_get("demo", "/realtime/topics/b")
            .header("last-event-id", "9"),
    )
    .await
    .unwrap();
    let resync = ahead.next_event(WAIT).await.unwrap();
    assert_eq!(resync.event.as_deref(), Some("resync"));
    assert_eq!(resync.id.as_deref(), Some("1"));
    drop(ahead);
    s.publish("demo", "b", json!(3)).await;
    let mut after = Sse::open(
        s.app_get("demo", "/realtime/topics/b")
            .header("last-event-id", resync.id.as_deref().unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(after.messages(1).await[0].json()["message"], 3);
}

/// Streams are served on the lean path: close-delimited (no chunked framing), the
/// connection closed when the stream ends. Anything unusual still gets a proper answer from
/// hyper: HTTP/1.0, a request with a body, a non-realtime request on the same port.
#[tokio::test]
async fn streams_use_the_lean_path_and_unusual_requests_still_work() {
    use crate::support::raw_http;
    let s = setup(Backend::Sqlite).await;
    s.create_topic("demo", "chat", true, "public").await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // An answer that is not a stream: sized, then the connection closes.
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", s.port))
        .await
        .unwrap();
    tcp.write_all(b"GET /realtime/topics/nope HTTP/1.1\r\nHost: demo.localhost\r\n\r\n")
        .await
        .unwrap();
    let mut all = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut all))
        .await
        .unwrap()
        .unwrap();
    let all = String::from_utf8(all).unwrap();
    let (head, body) = all.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 404 Not Found\r\n"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert!(
        head.contains(&format!("content-length: {}", body.len())),
        "{head}"
    );
    assert!(body.contains("\"not_found\""), "{body}");

    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", s.port))
        .await
        .unwrap();
    tcp.write_all(b"GET /realtime/topics/chat HTTP/1.1\r\nHost: demo.localhost\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("event: position") {
        let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "stream ended early");
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got).to_lowercase();
    assert!(text.starts_with("http/1.1 200 ok\r\n"), "{text}");
    assert!(text.contains("content-type: text/event-stream"));
    assert!(!text.contains("transfer-encoding"), "{text}");
    assert!(text.contains("\r\n\r\nretry: 2000\n\nid: 0\nevent: position\ndata: null\n\n"));
    drop(tcp);
    // The hung-up subscriber is noticed and counted out.
    let deadline = tokio::time::Instant::now() + WAIT;
    while s.realtime_health().await["connections"] != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "connection not released"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // HTTP/1.0 and a request with a body go to hyper, and are answered.
    let (head, _) = raw_http(
        s.port,
        b"GET /realtime/topics/nope HTTP/1.0\r\nHost: demo.localhost\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.0 404"), "{head}");
    let (head, _) = raw_http(
        s.port,
        b"GET /realtime/topics/nope HTTP/1.1\r\nHost: demo.localhost\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    let (head, _) = raw_http(
        s.port,
        b"GET /healthz HTTP/1.1\r\nHost: demo.localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

/// Verification holds every token to the limits minting keeps, whoever minted it: a
/// lifetime over the app's maximum (30 days by default, or what the app set; `exp − iat`,
/// or `exp − now` without `iat`) and a token before its `nbf` are refused.
#[tokio::test]
async fn tokens_are_held_to_their_limits_whoever_minted_them() {
    let s = setup(Backend::Sqlite).await;
    s.create_topic("demo", "t", true, "token").await;
    let day = 86_400;
    for (claims, ok) in [
        (
            json!({"topics": ["t"], "iat": now(), "exp": now() + 600}),
            true,
        ),
        (
            json!({"topics": ["t"], "iat": now(), "exp": now() + 3650 * day}),
            false,
        ),
        (
            json!({"topics": ["t"], "iat": now() - 40 * day, "exp": now() + 600}),
            false,
        ),
        (json!({"topics": ["t"], "exp": now() + 600}), true),
        (json!({"topics": ["t"], "exp": now() + 31 * day}), false),
        (
            json!({"topics": ["t"], "iat": now(), "nbf": now() + 3600, "exp": now() + 7200}),
            false,
        ),
        (
            json!({"topics": ["t"], "iat": now(), "nbf": now() - 10, "exp": now() + 600}),
            true,
        ),
    ] {
        let token = forge(&s, "demo", claims.clone()).await;
        let opened = Sse::open(s.app_get("demo", "/realtime/topics/t").bearer_auth(&token)).await;
        match (opened, ok) {
            (Ok(_), true) => {}
            (Err((status, _)), false) => assert_eq!(status, StatusCode::UNAUTHORIZED, "{claims}"),
            (opened, _) => panic!("{claims}: expected ok = {ok}, got {:?}", opened.err()),
        }
    }
    // The app lowers its limit to an hour: minting and verifying both keep it.
    let (status, app) = send(
        s.admin(Method::PATCH, "/api/v1/apps/demo")
            .json(&json!({"max_token_ttl_secs": 3600})),
    )
    .await;
    assert_eq!(
        (status, app["max_token_ttl_secs"].as_i64()),
        (StatusCode::OK, Some(3600))
    );
    let two_hours = forge(
        &s,
        "demo",
        json!({"topics": ["t"], "iat": now(), "exp": now() + 7200}),
    )
    .await;
    let refused = Sse::open(
        s.app_get("demo", "/realtime/topics/t")
            .bearer_auth(&two_hours),
    )
    .await;
    assert_eq!(refused.err().map(|e| e.0), Some(StatusCode::UNAUTHORIZED));
    let half_hour = forge(
        &s,
        "demo",
        json!({"topics": ["t"], "iat": now(), "exp": now() + 1800}),
    )
    .await;
    assert!(Sse::open(
        s.app_get("demo", "/realtime/topics/t")
            .bearer_auth(&half_hour)
    )
    .await
    .is_ok());
    let minted = send(
        s.admin(Method::POST, "/api/v1/apps/demo/tokens")
            .json(&json!({"topics": ["t"], "ttl_secs": 7200})),
    )
    .await;
    assert_error(&minted, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    let bad = send(
        s.admin(Method::PATCH, "/api/v1/apps/demo")
            .json(&json!({"max_token_ttl_secs": 10})),
    )
    .await;
    assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
}

/// Retiring a secret ends, within 2 s, every open stream a token it signed opened, with
/// `token_revoked`; streams opened with other secrets' tokens go on. Deleting the app ends
/// all of its token streams the same way.
#[tokio::test]
async fn retiring_a_secret_or_deleting_the_app_ends_its_streams() {
    let s = setup(Backend::Sqlite).await;
    s.create_topic("demo", "t", true, "token").await;
    let old = forge(
        &s,
        "demo",
        json!({"topics": ["t"], "iat": now(), "exp": now() + 600}),
    )
    .await;
    let old_kid = {
        let (_, list) = send(s.admin(Method::GET, "/api/v1/apps/demo/secrets")).await;
        list["secrets"][0]["kid"].as_str().unwrap().to_owned()
    };
    let newer = forge(
        &s,
        "demo",
        json!({"topics": ["t"], "iat": now(), "exp": now() + 600}),
    )
    .await;
    let mut doomed = Sse::open(s.app_get("demo", "/realtime/topics/t").bearer_auth(&old))
        .await
        .unwrap();
    let mut kept = Sse::open(s.app_get("demo", "/realtime/topics/t").bearer_auth(&newer))
        .await
        .unwrap();
    doomed.start_position(WAIT).await;
    kept.start_position(WAIT).await;
    let retired_at = std::time::Instant::now();
    let retire = send(s.admin(
        Method::POST,
        &format!("/api/v1/apps/demo/secrets/{old_kid}/retire"),
    ))
    .await;
    assert_eq!(retire.0, StatusCode::NO_CONTENT);
    let end = doomed.next_event(WAIT).await.expect("an end frame");
    assert_eq!(end.event.as_deref(), Some("error"));
    assert_eq!(end.json(), json!({"code": "token_revoked"}));
    assert!(retired_at.elapsed() < Duration::from_secs(2));
    assert!(doomed.next_frame(WAIT).await.is_none(), "the stream ends");
    s.publish("demo", "t", json!({"still": "here"})).await;
    assert_eq!(
        kept.messages(1).await[0].json()["message"],
        json!({"still": "here"})
    );

    assert_eq!(
        send(s.admin(Method::DELETE, "/api/v1/apps/demo")).await.0,
        StatusCode::NO_CONTENT
    );
    let end = kept.next_event(WAIT).await.expect("an end frame");
    assert_eq!(end.json(), json!({"code": "token_revoked"}));
}
