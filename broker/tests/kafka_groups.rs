//! Kafka consumer groups against real nodes and a real `redis-server`,
//! with librdkafka's balanced consumer (kcat -G) as the client nobody here
//! wrote: two members split a topic, commit, one leaves and the other
//! takes its partitions, the leader node is killed and the survivor goes
//! on with the new one; every record is read exactly once. ListGroups and
//! DescribeGroups are checked on a raw socket, decoded by `kafka-protocol`.

use std::{collections::BTreeMap, process::Stdio, time::Duration};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::{
    messages::{
        ApiKey, DescribeGroupsRequest, DescribeGroupsResponse, GroupId, ListGroupsRequest,
        ListGroupsResponse, RequestHeader, ResponseHeader,
    },
    protocol::{Decodable, Encodable, StrBytes},
};
use nix::{sys::signal::Signal, unistd::Pid};
use serde_json::Value;
use testkit::{Cluster, create_topic, get_json, kcat, wait_for};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    process::{Child, Command},
};

const WAIT: Duration = Duration::from_secs(60);

/// A kcat balanced consumer in `group`, printing `partition offset value`.
fn consumer(bootstrap: &str, group: &str, topic: &str) -> Child {
    Command::new("kcat")
        .args([
            "-b",
            bootstrap,
            "-G",
            group,
            "-X",
            "auto.offset.reset=earliest",
            // Commit often, so the test sees progress in the group soon.
            "-X",
            "auto.commit.interval.ms=200",
            "-f",
            "%p %o %s\n",
            topic,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("running kcat (scripts/system-deps.sh kcat installs it)")
}

/// SIGTERM (kcat then commits and leaves the group) and its output.
async fn stop(child: Child) -> (Vec<String>, String) {
    let pid = Pid::from_raw(child.id().expect("running") as i32);
    nix::sys::signal::kill(pid, Signal::SIGTERM).expect("signalling kcat");
    let output = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("kcat exits after SIGTERM")
        .expect("waiting for kcat");
    let lines = String::from_utf8(output.stdout)
        .expect("UTF-8")
        .lines()
        .map(str::to_owned)
        .collect();
    (lines, String::from_utf8_lossy(&output.stderr).into_owned())
}

async fn produce(bootstrap: &str, topic: &str, values: impl Iterator<Item = String>) {
    let input: String = values.map(|v| format!("{v}:{v}\n")).collect();
    kcat(
        &["-P", "-b", bootstrap, "-t", topic, "-K:", "-X", "acks=all"],
        &input,
    )
    .await;
}

/// The group as the leader describes it, once `ready` holds.
async fn group_when(url: &str, group: &str, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    wait_for(what, WAIT, || async {
        let (_, body) = get_json(&format!("{url}/groups/{group}")).await;
        ready(&body).then_some(body)
    })
    .await
}

fn members(body: &Value) -> Vec<&Value> {
    body["members"]
        .as_array()
        .map_or(Vec::new(), |m| m.iter().collect())
}

fn committed(body: &Value) -> u64 {
    body["partitions"].as_array().map_or(0, |ps| {
        ps.iter().filter_map(|p| p["committed"].as_u64()).sum()
    })
}

/// One request on a fresh connection, its response body decoded.
async fn call<Req: Encodable, Resp: Decodable>(
    addr: &str,
    api: ApiKey,
    version: i16,
    request: &Req,
) -> Resp {
    let mut frame = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("yak-test")))
        .encode(&mut frame, api.request_header_version(version))
        .expect("header");
    request.encode(&mut frame, version).expect("body");
    let mut stream = TcpStream::connect(addr).await.expect("connecting");
    let mut out = BytesMut::new();
    out.put_u32(frame.len() as u32);
    out.extend_from_slice(&frame);
    stream.write_all(&out).await.expect("sending");
    let size = stream.read_u32().await.expect("a response");
    let mut body = vec![0; size as usize];
    stream.read_exact(&mut body).await.expect("the response");
    let mut body = Bytes::from(body);
    let header = ResponseHeader::decode(&mut body, api.response_header_version(version))
        .expect("response header");
    assert_eq!(header.correlation_id, 7);
    let decoded = Resp::decode(&mut body, version).expect("response body");
    assert!(!body.has_remaining(), "bytes after the response");
    decoded
}

#[tokio::test]
async fn kcat_group_members_split_commit_rebalance_and_survive_a_failover() {
    let mut cluster = Cluster::builder().followers(1).kafka().start().await;
    cluster.wait_for_peers(WAIT).await;
    let leader = cluster.broker().url().to_owned();
    let (broker, follower) = (cluster.broker().kafka_addr(), cluster.node(1).kafka_addr());
    create_topic(&leader, "orders", 3).await;

    // Two members, bootstrapped from different nodes: the coordinator is
    // the leader either way.
    let a = consumer(&follower, "billing", "orders");
    let b = consumer(&broker, "billing", "orders");
    let stable = group_when(
        &leader,
        "billing",
        "two members sharing 3 partitions",
        |g| {
            let ms = members(g);
            g["state"] == "stable"
                && ms.len() == 2
                && ms
                    .iter()
                    .all(|m| !m["assignment"].as_array().unwrap().is_empty())
        },
    )
    .await;
    let held: usize = members(&stable)
        .iter()
        .map(|m| m["assignment"].as_array().unwrap().len())
        .sum();
    assert_eq!(held, 3, "{stable}");

    // ListGroups and DescribeGroups, as Kafka tools see the group.
    let listed: ListGroupsResponse = call(
        &follower,
        ApiKey::ListGroups,
        4,
        &ListGroupsRequest::default(),
    )
    .await;
    assert_eq!(listed.error_code, 16, "a follower is not the coordinator");
    let listed: ListGroupsResponse = call(
        &broker,
        ApiKey::ListGroups,
        4,
        &ListGroupsRequest::default(),
    )
    .await;
    let billing = listed
        .groups
        .iter()
        .find(|g| g.group_id.as_str() == "billing")
        .expect("billing is listed");
    assert_eq!(
        (billing.protocol_type.as_str(), billing.group_state.as_str()),
        ("consumer", "Stable")
    );
    let described: DescribeGroupsResponse = call(
        &broker,
        ApiKey::DescribeGroups,
        5,
        &DescribeGroupsRequest::default().with_groups(vec![
            GroupId(StrBytes::from_static_str("billing")),
            GroupId(StrBytes::from_static_str("nobody")),
        ]),
    )
    .await;
    let (billing, nobody) = (&described.groups[0], &described.groups[1]);
    assert_eq!(billing.error_code, 0);
    assert_eq!(billing.group_state.as_str(), "Stable");
    assert_eq!(billing.members.len(), 2);
    assert!(
        billing
            .members
            .iter()
            .all(|m| m.client_host.as_str() == "127.0.0.1" && !m.member_assignment.is_empty()),
        "{billing:?}"
    );
    assert_eq!(nobody.group_state.as_str(), "Dead");

    // Both read their share; commits reach Redis.
    produce(&broker, "orders", (1..=300).map(|n| format!("r{n}"))).await;
    group_when(&leader, "billing", "300 committed", |g| committed(g) == 300).await;

    // b leaves: a takes every partition.
    let (from_b, err_b) = stop(b).await;
    assert!(!from_b.is_empty() && from_b.len() < 300, "{err_b}");
    group_when(&leader, "billing", "a alone holds 3 partitions", |g| {
        let ms = members(g);
        g["state"] == "stable"
            && ms.len() == 1
            && ms[0]["assignment"].as_array().unwrap().len() == 3
    })
    .await;

    // The leader dies; the group (member, generation, offsets) is in Redis
    // and a carries on with the new leader without a rebalance.
    let generation = get_json(&format!("{leader}/groups/billing")).await.1["generation"].clone();
    cluster.broker_mut().kill9();
    let next = cluster
        .wait_for_leader(WAIT, |info| info.id != "broker")
        .await
        .url
        .expect("the new leader is registered");
    produce(&follower, "orders", (301..=400).map(|n| format!("r{n}"))).await;
    let after = group_when(&next, "billing", "400 committed", |g| committed(g) == 400).await;
    assert_eq!(after["generation"], generation, "no rebalance: {after}");

    let (from_a, err_a) = stop(a).await;
    let mut read: BTreeMap<String, usize> = BTreeMap::new();
    for line in from_a.iter().chain(&from_b) {
        let value = line.rsplit(' ').next().expect("partition offset value");
        *read.entry(value.to_owned()).or_default() += 1;
    }
    let twice: Vec<_> = read.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "read more than once: {twice:?}\n{err_a}");
    assert_eq!(read.len(), 400, "every record read: {err_a}");
    assert!((1..=400).all(|n| read.contains_key(&format!("r{n}"))));
    // Both left: the group is empty and keeps its offsets.
    let empty = group_when(&next, "billing", "empty", |g| g["state"] == "empty").await;
    assert_eq!(committed(&empty), 400);
}
