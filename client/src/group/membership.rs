//! The member's side of the group API on a [`YakClient`]: join, heartbeat,
//! commit and leave (`POST /groups/{group}/…`), and [`Verdict`], what a
//! refusal of one of them tells the member to do.
//!
//! Every call is one [`YakClient::call`], so it follows the leader across a
//! failover (a `307`/`503 not_leader`/`no_leader` is retried on the new
//! leader) and retries transient failures within the client's deadline.
//! All four may be retried: a repeated heartbeat, commit or leave has the
//! effect of one, and a repeated join with a member id is the same join.
//! A first join (no member id yet) whose answer was lost may have admitted
//! a member the client never hears of; the group drops it when its session
//! times out. Refusals (`4xx`) are never retried.

use std::time::Duration;

use reqwest::Method;
use yak_protocol::{
    ErrorCode,
    group::{Commit, Heartbeat, HeartbeatAnswer, Join, Joined, Offsets, SESSION_TIMEOUT_MS},
};

use crate::{
    cluster::{Body, YakClient},
    error::{ClientError, Result},
    wire::encode,
};

/// What a member must do after a refusal of the group API (or a heartbeat
/// that says the group is rebalancing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The group is rebalancing or moved on: join again with the member id.
    Rejoin,
    /// The session is gone (expired, or the member left): drop the
    /// partitions without committing and join again without a member id.
    Expired,
}

impl Verdict {
    /// The verdict of an error, if it is one of the group's refusals that
    /// a member recovers from by joining again.
    pub(crate) fn of(error: &ClientError) -> Option<Self> {
        match error.error_code()? {
            ErrorCode::StaleGeneration | ErrorCode::NotAssigned => Some(Verdict::Rejoin),
            ErrorCode::UnknownMember | ErrorCode::UnknownGroup => Some(Verdict::Expired),
            _ => None,
        }
    }
}

/// The path of one call on `group`.
fn path(group: &str, call: &str) -> String {
    format!("/groups/{}/{call}", encode(group))
}

impl YakClient {
    /// `POST /groups/{group}/join`. The node answers once the group is
    /// stable, which takes up to the longest session timeout among its
    /// members; this client cannot know the others', so the request waits
    /// for the longest the protocol allows.
    pub(crate) async fn join_group(&self, group: &str, join: &Join) -> Result<Joined> {
        let timeout =
            Duration::from_millis(*SESSION_TIMEOUT_MS.end()) + self.config().request_timeout;
        let body = Body::json(join);
        self.call(
            Method::POST,
            &path(group, "join"),
            Some(&body),
            Some(timeout),
            |_| true,
        )
        .await
    }

    /// `POST /groups/{group}/heartbeat`, each attempt bounded by `timeout`
    /// (a heartbeat that takes longer than the session is worthless).
    pub(crate) async fn heartbeat_group(
        &self,
        group: &str,
        beat: &Heartbeat,
        timeout: Duration,
    ) -> Result<HeartbeatAnswer> {
        let body = Body::json(beat);
        self.call(
            Method::POST,
            &path(group, "heartbeat"),
            Some(&body),
            Some(timeout),
            |_| true,
        )
        .await
    }

    /// `POST /groups/{group}/commit`: the group's offsets after it.
    pub(crate) async fn commit_group(&self, group: &str, commit: &Commit) -> Result<Offsets> {
        let body = Body::json(commit);
        self.call(
            Method::POST,
            &path(group, "commit"),
            Some(&body),
            None,
            |_| true,
        )
        .await
    }

    /// `POST /groups/{group}/leave`. A member the group no longer knows
    /// has left already: that is success.
    pub(crate) async fn leave_group(&self, group: &str, member_id: &str) -> Result<()> {
        let body = Body::json(&Heartbeat {
            member_id: member_id.to_owned(),
            generation: 0,
        });
        let left: Result<serde_json::Value> = self
            .call(
                Method::POST,
                &path(group, "leave"),
                Some(&body),
                None,
                |_| true,
            )
            .await;
        match left {
            Err(e) if Verdict::of(&e) != Some(Verdict::Expired) => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use reqwest::StatusCode;
    use serde_json::json;

    use super::*;

    fn refusal(code: &str) -> ClientError {
        let body = json!({"error": code, "message": "m"});
        ClientError::from_answer(StatusCode::CONFLICT, body.to_string().as_bytes())
    }

    #[test]
    fn refusals_say_whether_to_rejoin_or_start_over() {
        assert_eq!(
            Verdict::of(&refusal("stale_generation")),
            Some(Verdict::Rejoin)
        );
        assert_eq!(Verdict::of(&refusal("not_assigned")), Some(Verdict::Rejoin));
        assert_eq!(
            Verdict::of(&refusal("unknown_member")),
            Some(Verdict::Expired)
        );
        assert_eq!(
            Verdict::of(&refusal("unknown_group")),
            Some(Verdict::Expired)
        );
        for other in ["assignor_mismatch", "unknown_topic", "invalid_request"] {
            assert_eq!(Verdict::of(&refusal(other)), None, "{other}");
        }
        let moved = ClientError::NoLeader("failing over".to_owned());
        assert_eq!(Verdict::of(&moved), None);
    }

    #[test]
    fn group_names_are_encoded_in_the_path() {
        assert_eq!(path("billing.v2", "join"), "/groups/billing.v2/join");
        assert_eq!(path("a/b", "commit"), "/groups/a%2Fb/commit");
    }
}
