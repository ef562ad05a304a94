//! One conformance suite for every presence store: in this process (one node) and Redis (a
//! cluster) answer alike — a member joins with its first connection, updates without
//! leaving, leaves after its last, and topics and apps are kept apart. Redis also: a node
//! whose lease runs out loses its members, reported as leaves to exactly one reaper, and
//! cannot bring them back (a new incarnation). Redis: a private `redis-server` per test.

use std::sync::Arc;
use std::time::Duration;

use picloud_core::ids::AppId;
use picloud_core::topic::TopicName;
use picloud_realtime::presence::{
    Event, EventKind, LocalPresence, PresenceError, PresenceStore, RedisPresence,
};
use picloud_store::testing::PrivateRedis;
use tokio_util::sync::CancellationToken;

fn t(name: &str) -> TopicName {
    TopicName::parse(name).unwrap()
}

fn ev(kind: EventKind, sub: &str, data: &str) -> Option<Event> {
    Some(Event::new(kind, sub, data))
}

/// `a` and `b` are two nodes over the same members (the same store on one node).
async fn conformance(a: &dyn PresenceStore, b: &dyn PresenceStore) {
    let app = AppId("app-1".into());
    let other = AppId("app-2".into());
    let lobby = t("lobby");
    // Connection ids are unique in the cluster (on one node, its counter alone).
    let (a1, a2, b1) = (
        format!("{}1", a.prefix()),
        format!("{}2", a.prefix()),
        format!("{}3", b.prefix()),
    );

    assert_eq!(
        a.enter(&app, &lobby, "ann", &a1, r#"{"x":1}"#)
            .await
            .unwrap(),
        ev(EventKind::Join, "ann", r#"{"x":1}"#),
        "the first connection joins"
    );
    assert_eq!(
        b.enter(&app, &lobby, "ann", &b1, r#"{"x":1}"#)
            .await
            .unwrap(),
        None,
        "a second tab, on another node, with the same data: nothing to tell"
    );
    assert_eq!(
        a.enter(&app, &lobby, "ann", &a2, r#"{"x":2}"#)
            .await
            .unwrap(),
        ev(EventKind::Update, "ann", r#"{"x":2}"#),
        "new data from a third: an update, not a join"
    );
    for n in 3..23 {
        let data = format!(r#"{{"x":{n}}}"#);
        assert_eq!(
            b.enter(&app, &lobby, "ann", &b1, &data).await.unwrap(),
            ev(EventKind::Update, "ann", &data)
        );
    }
    b.enter(&app, &lobby, "bob", &b1, "null").await.unwrap();
    let members = a.members(&app, &lobby).await.unwrap();
    let summary: Vec<_> = members
        .iter()
        .map(|m| (m.sub.as_str(), m.data.as_str(), m.connections))
        .collect();
    assert_eq!(summary, [("ann", r#"{"x":22}"#, 3), ("bob", "null", 1)]);
    assert!(
        a.members(&other, &lobby).await.unwrap().is_empty(),
        "apps apart"
    );
    assert!(
        a.members(&app, &t("elsewhere")).await.unwrap().is_empty(),
        "topics apart"
    );

    assert_eq!(a.leave(&app, &lobby, "ann", &a1).await.unwrap(), None);
    assert_eq!(b.leave(&app, &lobby, "ann", &b1).await.unwrap(), None);
    assert_eq!(
        a.leave(&app, &lobby, "ann", &a2).await.unwrap(),
        ev(EventKind::Leave, "ann", r#"{"x":22}"#),
        "the last connection leaves"
    );
    assert_eq!(
        a.leave(&app, &lobby, "ann", &a2).await.unwrap(),
        None,
        "once"
    );
    assert_eq!(
        a.leave(&app, &lobby, "nobody", &a1).await.unwrap(),
        None,
        "not entered"
    );
    let left: Vec<_> = b
        .members(&app, &lobby)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.sub)
        .collect();
    assert_eq!(left, ["bob"]);
}

#[tokio::test]
async fn in_process() {
    let p = LocalPresence::default();
    conformance(&p, &p).await;
}

async fn redis_node(redis: &PrivateRedis, node: &str, lease: Duration) -> Arc<RedisPresence> {
    let p = RedisPresence::start_with_lease(&redis.url(), node, lease, CancellationToken::new())
        .unwrap();
    // The first lease is taken at start: enters are refused until then.
    let mut inc = p.incarnation();
    tokio::time::timeout(Duration::from_secs(5), inc.wait_for(|n| *n > 0))
        .await
        .expect("lease taken")
        .unwrap();
    p
}

#[tokio::test]
async fn redis() {
    let redis = PrivateRedis::start();
    let a = redis_node(&redis, "a", Duration::from_secs(15)).await;
    let b = redis_node(&redis, "b", Duration::from_secs(15)).await;
    conformance(&*a, &*b).await;
}

#[tokio::test]
async fn a_dead_nodes_members_leave_once_and_do_not_come_back() {
    let redis = PrivateRedis::start();
    let lease = Duration::from_millis(900);
    let a = redis_node(&redis, "a", lease).await;
    let b = redis_node(&redis, "b", lease).await;
    let c = redis_node(&redis, "c", lease).await;
    let app = AppId("app-1".into());
    let room = t("room");
    let a1 = format!("{}1", a.prefix());
    let b1 = format!("{}1", b.prefix());
    a.enter(&app, &room, "ann", &a1, "1").await.unwrap();
    a.enter(&app, &room, "bob", &a1, "2").await.unwrap();
    b.enter(&app, &room, "bob", &b1, "2").await.unwrap();
    assert!(b.reap().await.unwrap().is_empty(), "nobody is dead");

    // `a` stops (as a paused process would): its lease runs out.
    let old = a.incarnation_id();
    let mut watch = a.incarnation();
    watch.borrow_and_update();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("DEL")
        .arg(format!("picloud:lease:{old}"))
        .query_async(&mut conn)
        .await
        .unwrap();

    // Two survivors reap at once: one leave for ann, none for bob (b holds him), once.
    let (rb, rc) = tokio::join!(b.reap(), c.reap());
    let mut reaped = rb.unwrap();
    reaped.extend(rc.unwrap());
    let leaves: Vec<_> = reaped
        .iter()
        .map(|r| (r.app.as_str(), r.topic.as_str(), r.event.clone()))
        .collect();
    assert_eq!(
        leaves,
        [("app-1", "room", ev(EventKind::Leave, "ann", "1").unwrap())]
    );
    let subs: Vec<_> = b
        .members(&app, &room)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.sub, m.connections))
        .collect();
    assert_eq!(subs, [("bob".to_owned(), 1)]);

    // `a` comes back: its old connection cannot enter again…
    assert_eq!(
        a.enter(&app, &room, "ann", &a1, "1").await,
        Err(PresenceError::LeaseLost)
    );
    // …and it finds its lease gone at its next renewal: a new incarnation, announced.
    tokio::time::timeout(Duration::from_secs(5), watch.changed())
        .await
        .expect("a new incarnation")
        .unwrap();
    assert_ne!(a.incarnation_id(), old);
    let fresh = format!("{}1", a.prefix());
    assert_eq!(
        a.enter(&app, &room, "ann", &fresh, "1").await.unwrap(),
        ev(EventKind::Join, "ann", "1"),
        "entering again through the new incarnation joins"
    );
    assert!(c.reap().await.unwrap().is_empty(), "nothing more to reap");
}
