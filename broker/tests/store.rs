//! Fencing at the level of the Redis scripts: [`ClusterStore`] against a
//! real `redis-server`, with no node running. Two "nodes" are just two ids.

use std::time::Duration;

use broker::store::{Acquire, ClusterStore, StoreError};
use testkit::{RedisServer, unique_cluster_name, wait_for};

const TTL: Duration = Duration::from_millis(400);

async fn store(redis: &RedisServer) -> ClusterStore {
    ClusterStore::new(
        &redis.url(),
        &unique_cluster_name("store"),
        Duration::from_secs(2),
    )
    .expect("a store")
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
