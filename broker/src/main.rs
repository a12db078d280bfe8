//! `broker`: a YAK node that tries to take the leader lease at start-up.

fn main() -> std::process::ExitCode {
    broker::launch::main(broker::StartAs::Candidate)
}
