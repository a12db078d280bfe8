//! `broker`: a YAK node that tries to take the leader lease at start-up.

// jemalloc, not glibc's malloc. The Kafka protocol crate (`kafka-protocol`
// 0.18) sizes a `Vec` from an array count read off the wire before it
// reads an element, so a request of a few bytes claiming 2^31 elements
// asks for hundreds of GiB; glibc refuses a block larger than the machine
// could back, and Rust aborts on a refused allocation. jemalloc maps large
// blocks with `MAP_NORESERVE` wherever the kernel overcommits (Linux's
// default), backing only the pages written: the lying count costs address
// space until the decoder finds the input too short. The follower binary
// does the same; docs/kafka.md ("Bad input") has the details, and
// .cargo/config.toml how jemalloc is built to return freed memory soon.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    broker::launch::main(broker::StartAs::Candidate)
}

#[cfg(test)]
mod tests {
    /// What the Kafka decoder does with a lying count: reserve, find
    /// nothing to read, drop. With glibc's malloc this aborts.
    #[test]
    fn a_block_larger_than_the_machine_is_reserved_not_backed() {
        for _ in 0..3 {
            let huge: Vec<[u8; 72]> = Vec::with_capacity(i32::MAX as usize);
            assert!(huge.capacity() >= i32::MAX as usize);
        }
    }
}
