//! [`GroupWatch`]: the cluster's consumer groups for the group view — every
//! group described (members, assignment, committed offset and lag per
//! partition), fetched once a second while a page watches, and published
//! through a `watch` channel that the pages' event streams read.
//!
//! One task per UI process, however many pages watch; it asks nothing
//! while none does. When the cluster does not answer, the last groups stay
//! and the view says why they may be stale.

use std::{sync::Arc, time::Duration};

use futures_util::{StreamExt, TryStreamExt, stream};
use serde::Serialize;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use yak_client::{ClientError, ErrorCode, GroupDetail, YakClient};

/// Between refreshes.
const EVERY: Duration = Duration::from_secs(1);
/// Groups described at once.
const CONCURRENT: usize = 8;

/// What the group view shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GroupsView {
    /// When the groups were fetched (ms since the Unix epoch); 0 before
    /// the first answer.
    pub at_ms: i64,
    /// Sorted by name.
    pub groups: Vec<GroupDetail>,
    /// Why the last refresh failed (the groups are then the last known).
    pub error: Option<String>,
}

/// Every group, described. A group that disappears between the list and
/// its description is left out.
pub async fn fetch(client: &YakClient) -> Result<Vec<GroupDetail>, ClientError> {
    let list = client.list_groups().await?;
    let described: Vec<Option<GroupDetail>> = stream::iter(list.groups)
        .map(|summary| async move {
            match client.describe_group(&summary.group).await {
                Ok(detail) => Ok(Some(detail)),
                Err(e) if e.error_code() == Some(ErrorCode::UnknownGroup) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .buffered(CONCURRENT)
        .try_collect()
        .await?;
    let mut groups: Vec<GroupDetail> = described.into_iter().flatten().collect();
    groups.sort_by(|a, b| a.group.cmp(&b.group));
    Ok(groups)
}

/// The shared view; cheap to clone.
#[derive(Debug, Clone)]
pub struct GroupWatch {
    view: Arc<watch::Sender<Arc<GroupsView>>>,
    /// Wakes the task for a page that starts watching.
    poke: Arc<Notify>,
}

impl GroupWatch {
    /// Starts the task on the current runtime; it ends with `shutdown`.
    pub fn spawn(client: YakClient, shutdown: CancellationToken) -> Self {
        let view = Arc::new(watch::channel(Arc::new(GroupsView::default())).0);
        let poke = Arc::new(Notify::new());
        let watch = Self {
            view: view.clone(),
            poke: poke.clone(),
        };
        tokio::spawn(async move {
            let mut every = tokio::time::interval(EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    () = poke.notified() => {}
                    () = shutdown.cancelled() => return,
                }
                if view.receiver_count() == 0 {
                    continue;
                }
                let fetched = tokio::select! {
                    fetched = fetch(&client) => fetched,
                    () = shutdown.cancelled() => return,
                };
                let next = match fetched {
                    Ok(groups) => GroupsView {
                        at_ms: yak_ui::now_ms(),
                        groups,
                        error: None,
                    },
                    Err(e) => GroupsView {
                        error: Some(yak_ui::error::describe(&e)),
                        ..GroupsView::clone(&view.borrow())
                    },
                };
                view.send_replace(Arc::new(next));
            }
        });
        watch
    }

    /// The view now and its updates (one a second while watched).
    pub fn watch(&self) -> watch::Receiver<Arc<GroupsView>> {
        let rx = self.view.subscribe();
        self.poke.notify_one();
        rx
    }
}
