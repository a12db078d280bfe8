//! Which pages are open: a page (a browser tab) names itself with a
//! [`TabId`] in its event stream's URL and in the group subscriptions it
//! makes, which then belong to it and end when it closes.
//!
//! A tab is *open* while at least one of its event streams is. When the
//! last one ends, [`Tabs::close`] hands out a [`Closing`] ticket; the owner
//! of the tab's subscriptions waits [`GRACE`] and then ends them only if the
//! ticket is still [`current`](Tabs::still_closed): a stream of the tab
//! that attaches in between (a reload, which keeps the id in the tab's
//! `sessionStorage`, or `EventSource` reconnecting after a blip) voids it.
//!
//! Invariant: an entry exists only for a tab with an open stream or a
//! pending ticket; [`Tabs::forget`] drops it when its ticket is redeemed.

use std::{collections::HashMap, fmt, sync::Mutex, time::Duration};

use serde::Deserialize;
use yak_ui::UiError;

/// How long a tab may be without an event stream before its group
/// subscriptions end: above the browser's reconnect delay (1 s, which the
/// stream asks for) and the time a reload takes.
pub const GRACE: Duration = Duration::from_secs(3);

/// Longest tab id.
const MAX_TAB_ID: usize = 64;

/// A page's name for itself: 1–64 of `[A-Za-z0-9_-]` (the page makes a
/// random one).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct TabId(String);

impl TryFrom<String> for TabId {
    type Error = UiError;

    fn try_from(id: String) -> Result<Self, UiError> {
        let valid = (1..=MAX_TAB_ID).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if valid {
            Ok(Self(id))
        } else {
            Err(UiError::bad_request(
                "invalid_tab",
                format!("a tab id is 1 to {MAX_TAB_ID} of A-Z, a-z, 0-9, - and _"),
            ))
        }
    }
}

impl fmt::Display for TabId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tab's last stream ended (or it never had one); redeem after [`GRACE`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closing {
    pub tab: TabId,
    epoch: u64,
}

#[derive(Debug, Default)]
struct Tab {
    streams: usize,
    /// Grows with every ticket, so that only the newest is honoured.
    epoch: u64,
}

/// The open tabs of the process.
#[derive(Debug, Default)]
pub struct Tabs {
    tabs: Mutex<HashMap<TabId, Tab>>,
}

impl Tabs {
    /// A stream of `tab` opened.
    pub fn open(&self, tab: &TabId) {
        self.tabs
            .lock()
            .unwrap()
            .entry(tab.clone())
            .or_default()
            .streams += 1;
    }

    /// A stream of `tab` ended; the ticket when it was the last one.
    pub fn close(&self, tab: &TabId) -> Option<Closing> {
        let mut tabs = self.tabs.lock().unwrap();
        let entry = tabs.get_mut(tab)?;
        entry.streams = entry.streams.saturating_sub(1);
        (entry.streams == 0).then(|| Self::ticket(tab, entry))
    }

    /// A ticket for `tab` if none of its streams is open (a subscription
    /// made by a page whose stream is not connected must not outlive it).
    pub fn unless_open(&self, tab: &TabId) -> Option<Closing> {
        let mut tabs = self.tabs.lock().unwrap();
        let entry = tabs.entry(tab.clone()).or_default();
        (entry.streams == 0).then(|| Self::ticket(tab, entry))
    }

    fn ticket(tab: &TabId, entry: &mut Tab) -> Closing {
        entry.epoch += 1;
        Closing {
            tab: tab.clone(),
            epoch: entry.epoch,
        }
    }

    /// Whether the tab is still without a stream since `ticket` was given.
    pub fn still_closed(&self, ticket: &Closing) -> bool {
        self.tabs
            .lock()
            .unwrap()
            .get(&ticket.tab)
            .is_some_and(|t| t.streams == 0 && t.epoch == ticket.epoch)
    }

    /// Drops the entry of a tab whose `ticket` was redeemed.
    pub fn forget(&self, ticket: &Closing) {
        let mut tabs = self.tabs.lock().unwrap();
        if tabs
            .get(&ticket.tab)
            .is_some_and(|t| t.streams == 0 && t.epoch == ticket.epoch)
        {
            tabs.remove(&ticket.tab);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tab(id: &str) -> TabId {
        TabId::try_from(id.to_owned()).unwrap()
    }

    #[test]
    fn tab_ids_are_short_and_plain() {
        assert!(TabId::try_from("a1-B_2".to_owned()).is_ok());
        for bad in ["", "a b", "<x>", &"x".repeat(65)] {
            let e = TabId::try_from(bad.to_owned()).unwrap_err();
            assert_eq!(e.code(), "invalid_tab", "{bad:?}");
        }
    }

    #[test]
    fn the_last_stream_to_close_gives_a_ticket() {
        let tabs = Tabs::default();
        let t = tab("t");
        tabs.open(&t);
        tabs.open(&t);
        assert_eq!(tabs.close(&t), None);
        let ticket = tabs.close(&t).expect("the last stream");
        assert!(tabs.still_closed(&ticket));
        tabs.forget(&ticket);
        assert!(!tabs.still_closed(&ticket), "forgotten");
        assert_eq!(tabs.close(&t), None, "an unknown tab");
    }

    #[test]
    fn a_stream_that_opens_again_voids_the_ticket() {
        let tabs = Tabs::default();
        let t = tab("t");
        tabs.open(&t);
        let first = tabs.close(&t).unwrap();
        // A reload: the page's new stream attaches within the grace.
        tabs.open(&t);
        assert!(!tabs.still_closed(&first));
        // ...and closes again: only the newer ticket counts.
        let second = tabs.close(&t).unwrap();
        assert!(!tabs.still_closed(&first));
        tabs.forget(&first);
        assert!(
            tabs.still_closed(&second),
            "the stale ticket forgot nothing"
        );
    }

    #[test]
    fn a_tab_without_a_stream_gets_a_ticket_at_once() {
        let tabs = Tabs::default();
        let t = tab("t");
        assert!(tabs.unless_open(&t).is_some());
        tabs.open(&t);
        assert_eq!(tabs.unless_open(&t), None);
    }
}
