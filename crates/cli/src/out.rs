//! Standard output and standard error of every command, written in one
//! place. A closed output (`suanwang job tasks ID | head -1`) ends the
//! command quietly with exit 0, as ripgrep does, instead of the panic of
//! `println!` on `EPIPE` (Rust ignores SIGPIPE, so the write fails). Any
//! other write error ends it with a message and exit 2.

use std::io::Write as _;

/// Writes `text` and a newline to standard output.
pub fn say(text: impl AsRef<str>) {
    let text = text.as_ref();
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.write_all(b"\n"))
        .and_then(|()| stdout.flush());
    if let Err(error) = written {
        drop(stdout);
        closed_or_failed(&error);
    }
}

/// Writes `value` as pretty JSON and a newline to standard output.
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    say(serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Writes a line to standard error; a closed standard error is ignored
/// (there is nowhere left to say anything).
pub fn warn(text: impl AsRef<str>) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{}", text.as_ref());
}

/// True when `error`, or an error it wraps, is a write to a closed pipe.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Ends the process after a failed write to standard output: quietly with
/// exit 0 when the reader went away, else with the error and exit 2.
fn closed_or_failed(error: &std::io::Error) -> ! {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(i32::from(crate::exit::OK));
    }
    warn(format!("error: writing standard output: {error}"));
    std::process::exit(i32::from(crate::exit::INPUT));
}
