//! `follower`: a YAK node that starts by following. It is the same node as
//! `broker`; it only waits one lease TTL before it tries to lead, and then
//! obeys the lease like any node.

// jemalloc, for the reason given in the broker binary: a lying array count
// in a Kafka request must not abort the node.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    broker::launch::main(broker::StartAs::Follower)
}
