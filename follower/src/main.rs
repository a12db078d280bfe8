//! `follower`: a YAK node that starts by following. It is the same node as
//! `broker`; it only waits one lease TTL before it tries to lead, and then
//! obeys the lease like any node.

fn main() -> std::process::ExitCode {
    broker::launch::main(broker::StartAs::Follower)
}
