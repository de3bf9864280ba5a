use std::process::ExitCode;

use std::io::IsTerminal;

use clap::{CommandFactory, Parser};
use tracing_subscriber::EnvFilter;

use auditlake::cli::{self, Cli};

/// mimalloc, as in datafusion-cli: fewer page faults and less resident memory
/// than glibc's per-thread arenas under a parser that allocates per member.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Stack of the thread that parses and plans statements, and of the
/// runtime's workers that evaluate them. Deep statements recurse; the
/// memory is reserved, and only touched as deep as a statement goes.
const STACK_BYTES: usize = 256 << 20;

fn main() -> ExitCode {
    // On a thread of its own, whose stack size the binary chooses (the main
    // thread's is the system's, 8 MiB).
    match std::thread::Builder::new()
        .name("auditlake".into())
        .stack_size(STACK_BYTES)
        .spawn(run)
        .map(|t| t.join())
    {
        Ok(Ok(code)) => code,
        Ok(Err(_)) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("auditlake: error: cannot start: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(STACK_BYTES)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("auditlake: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let command = match cli.command {
        Some(command) => command,
        // A bare `auditlake` on a terminal is the shell; elsewhere, usage.
        None if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() => {
            Cli::parse_from(["auditlake", "shell"])
                .command
                .expect("`shell` parses as a command")
        }
        None => {
            let _ = Cli::command().print_help();
            return ExitCode::from(2);
        }
    };
    if batch_command(&command) {
        small_pages_only();
    }
    let result = runtime.block_on(cli::run(command));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("{}", auditlake::report::error_line(&e));
            ExitCode::from(auditlake::report::exit_code(&e))
        }
    }
}

/// Commands that write month files: `convert`, `pull` (which converts what
/// it fetched, through the same code) and `upgrade` (which rewrites month
/// files with the same writer), as against the questions that read a lake.
/// Only `convert` was measured (BENCHMARKS.md).
fn batch_command(command: &cli::Command) -> bool {
    matches!(
        command,
        cli::Command::Convert(_) | cli::Command::Pull(_) | cli::Command::Upgrade(_)
    )
}

/// Turns transparent huge pages off for the rest of the process (Linux).
///
/// mimalloc asks the kernel for 2 MiB pages on its arenas, and a conversion
/// allocates and frees hundreds of MB of short-lived buffers (parsed
/// batches, decoded pages, encoder buffers): each fresh huge page is zeroed
/// whole on first touch and again after mimalloc returns it. On a
/// conversion of 6 × 200k events with 4 KiB pages, system time fell by
/// about a third, CPU by 2–6% and peak RSS by 7–16% (BENCHMARKS.md).
/// Questions measured the other way: with small pages, one-shot queries
/// that decode hundreds of MB took ~20% longer (short ones gained a few
/// ms), so the shell and `query` keep the default.
fn small_pages_only() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_THP_DISABLE takes one integer argument and sets a
        // flag on this process; it touches no memory of ours.
        let rc = unsafe {
            libc::prctl(
                libc::PR_SET_THP_DISABLE,
                1 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            )
        };
        if rc != 0 {
            tracing::debug!(
                "cannot turn transparent huge pages off: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// Logs go to stderr; `-v` shows info, `-vv` debug; `RUST_LOG` overrides.
fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "auditlake=info",
        _ => "auditlake=debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
}
