//! Fencing at the level of the Redis scripts: [`ClusterStore`] against a
//! real `redis-server`, with no node running. Two "nodes" are just two ids.

use std::time::Duration;

use broker::store::{Acquire, ClusterStore, LeaseHolder, StoreError};
use testkit::{RedisServer, unique_cluster_name, wait_for};

const TTL: Duration = Duration::from_millis(400);

async fn store(redis: &RedisServer) -> ClusterStore {
    store_of(redis, &unique_cluster_name("store"))
}

/// A store of `cluster`: several are several nodes, each with its own
/// connection.
fn store_of(redis: &RedisServer, cluster: &str) -> ClusterStore {
    ClusterStore::new(&redis.url(), cluster, Duration::from_secs(2)).expect("a store")
}

#[tokio::test]
async fn epochs_fence_leases_and_high_water_marks() {
    let redis = RedisServer::start().await;
    let store = store(&redis).await;

    // a takes the lease at epoch 1; b cannot while a holds it.
    assert_eq!(
        store.acquire("a", TTL, 0).await.unwrap(),
        Acquire::Won { epoch: 1 }
    );
    assert_eq!(store.acquire("b", TTL, 0).await.unwrap(), Acquire::Held);
    let (holder, epoch) = store.lease().await.unwrap();
    assert_eq!(holder.unwrap().node_id, "a");
    assert_eq!(epoch, 1);
    assert_eq!(store.advance_hwm("t", 0, 1, 5).await.unwrap(), 5);

    // Only the holder renews or releases.
    assert!(store.renew("a", 1, TTL).await.unwrap());
    assert!(!store.renew("b", 1, TTL).await.unwrap());
    assert!(!store.release("b", 1).await.unwrap());
    assert!(!store.renew("a", 2, TTL).await.unwrap(), "wrong epoch");

    // After the lease expires, b gets epoch 2.
    let won = wait_for("the lease to expire", Duration::from_secs(5), || async {
        match store.acquire("b", TTL, 0).await.unwrap() {
            Acquire::Won { epoch } => Some(epoch),
            _ => None,
        }
    })
    .await;
    assert_eq!(won, 2);

    // a's epoch is dead: its commit is refused and changes nothing.
    match store.advance_hwm("t", 0, 1, 9).await {
        Err(StoreError::Fenced { epoch }) => assert_eq!(epoch, 1),
        other => panic!("epoch 1 should be fenced, got {other:?}"),
    }
    assert_eq!(store.hwm("t", 0).await.unwrap(), 5);
    assert!(!store.renew("a", 1, TTL).await.unwrap());
    assert!(!store.release("a", 1).await.unwrap());
    assert_eq!(store.lease().await.unwrap().0.unwrap().node_id, "b");

    // b's epoch commits, and the HWM only goes up.
    assert_eq!(store.advance_hwm("t", 0, 2, 9).await.unwrap(), 9);
    assert_eq!(store.advance_hwm("t", 0, 2, 7).await.unwrap(), 9);
    assert_eq!(store.hwm("t", 0).await.unwrap(), 9);
    assert_eq!(
        store.advance_hwm("t", 1, 2, 3).await.unwrap(),
        3,
        "per partition"
    );
    assert_eq!(store.hwm("t", 0).await.unwrap(), 9);
    assert_eq!(store.hwms("t", 3).await.unwrap(), [9, 3, 0], "never set: 0");

    // The holder releases; the lease is free at once.
    assert!(store.release("b", 2).await.unwrap());
    assert_eq!(store.lease().await.unwrap().0, None);
    assert_eq!(
        store.acquire("a", TTL, 0).await.unwrap(),
        Acquire::Won { epoch: 3 }
    );
}

#[tokio::test]
async fn an_epoch_floor_above_redis_is_never_reissued() {
    // A Redis that lost its data (here: a fresh one) knows no epoch; a node
    // that has seen epoch 41 must get 42, not 1.
    let redis = RedisServer::start().await;
    let store = store(&redis).await;
    assert_eq!(
        store.acquire("a", TTL, 41).await.unwrap(),
        Acquire::Won { epoch: 42 }
    );
    assert_eq!(store.lease().await.unwrap().1, 42);
    // A floor below the stored epoch does not lower it.
    assert!(store.release("a", 42).await.unwrap());
    assert_eq!(
        store.acquire("b", TTL, 3).await.unwrap(),
        Acquire::Won { epoch: 43 }
    );
}

#[tokio::test]
async fn an_epoch_survives_a_redis_restart_with_aof() {
    let mut redis = RedisServer::builder()
        .appendonly(true)
        .appendfsync_always(true)
        .start()
        .await;
    let store = store(&redis).await;
    assert_eq!(
        store.acquire("a", TTL, 0).await.unwrap(),
        Acquire::Won { epoch: 1 }
    );
    store.advance_hwm("t", 0, 1, 4).await.unwrap();
    redis.kill();
    redis.restart().await;
    // The store reconnects by itself.
    let hwm = wait_for("the store to reconnect", Duration::from_secs(5), || async {
        store.hwm("t", 0).await.ok()
    })
    .await;
    assert_eq!(hwm, 4);
    assert_eq!(store.lease().await.unwrap().1, 1);
}

/// Closes Redis connection `client` from the server's side, as the death
/// of its process would.
async fn kill_client(redis: &RedisServer, client: i64) {
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(client)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(killed, 1, "client {client} was connected");
}

async fn holder(store: &ClusterStore) -> LeaseHolder {
    store.lease().await.unwrap().0.expect("a lease holder")
}

#[tokio::test]
async fn a_lease_is_taken_over_only_while_its_holders_connection_is_gone() {
    const LONG: Duration = Duration::from_secs(60);
    let redis = RedisServer::start().await;
    let cluster = unique_cluster_name("store");
    let (a, b) = (store_of(&redis, &cluster), store_of(&redis, &cluster));
    assert_eq!(
        a.acquire("a", LONG, 0).await.unwrap(),
        Acquire::Won { epoch: 1 }
    );
    let first = holder(&b).await;
    let client = first
        .client
        .expect("the lease names its holder's connection");
    assert!(b.client_connected(client).await.unwrap());
    assert!(a.renew("a", 1, LONG).await.unwrap());
    assert_eq!(holder(&b).await.client, Some(client), "the same connection");
    assert_eq!(
        b.take_over(
            "b",
            LONG,
            0,
            &LeaseHolder {
                client: Some(client + 1000),
                ..first.clone()
            }
        )
        .await
        .unwrap(),
        Acquire::Held,
        "not the connection the lease names"
    );

    // a's connection drops, and a reconnects: its next renewal records the
    // new connection, and a takeover naming the old one fails.
    kill_client(&redis, client).await;
    assert!(!b.client_connected(client).await.unwrap());
    wait_for(
        "a to renew on a new connection",
        Duration::from_secs(10),
        || async { a.renew("a", 1, LONG).await.ok().filter(|&renewed| renewed) },
    )
    .await;
    let second = holder(&b).await;
    let reconnected = second.client.unwrap();
    assert_ne!(reconnected, client);
    assert!(b.client_connected(reconnected).await.unwrap());
    assert_eq!(
        b.take_over("b", LONG, 0, &first).await.unwrap(),
        Acquire::Held
    );
    assert_eq!(holder(&b).await.node_id, "a");

    // Gone for good: b takes the lease over long before it expires, at a
    // new epoch that fences a.
    kill_client(&redis, reconnected).await;
    assert_eq!(
        b.take_over("b", LONG, 0, &second).await.unwrap(),
        Acquire::Won { epoch: 2 }
    );
    let now = holder(&b).await;
    assert_eq!((now.node_id.as_str(), now.epoch), ("b", 2));
    assert!(now.ttl_ms > 50_000, "a fresh lease: {now:?}");
    assert!(b.client_connected(now.client.unwrap()).await.unwrap());
    let renewed = wait_for(
        "a to reach Redis again",
        Duration::from_secs(10),
        || async { a.renew("a", 1, LONG).await.ok() },
    )
    .await;
    assert!(!renewed, "a's lease is gone");
    assert!(matches!(
        a.advance_hwm("t", 0, 1, 5).await,
        Err(StoreError::Fenced { epoch: 1 })
    ));
}
