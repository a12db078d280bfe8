//! One module per subcommand, plus the flags they share.

pub mod bench;
pub mod cluster;
pub mod consume;
pub mod groups;
pub mod produce;
pub mod topics;
pub mod up;

/// Prints a line to stdout; a closed pipe (`yak … | head`) ends the
/// program quietly instead of panicking.
pub fn out(line: impl std::fmt::Display) {
    use std::io::Write;
    if let Err(e) = writeln!(std::io::stdout().lock(), "{line}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("yak: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}
