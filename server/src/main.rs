use std::process::ExitCode;

use cashflow::App;
use cashflow::config::Cli;
use clap::{CommandFactory, FromArgMatches};
use tracing::info;
use tracing_subscriber::EnvFilter;

// Rust's allocations straight to mimalloc; C's (librdkafka's, SQLite's) reach it through the
// `override` feature's malloc.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    no_transparent_huge_pages();
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|m| Ok((Cli::from_arg_matches(&m)?, m)));
    let (cli, matches) = match parsed {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            // --help and --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // One clear line instead of clap's usage block.
            let first = e
                .to_string()
                .lines()
                .next()
                .unwrap_or("invalid arguments")
                .trim()
                .to_owned();
            eprintln!("{first} (see cashflow --help)");
            return ExitCode::from(2);
        }
    };
    let mut settings = match cli.into_settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    settings.explicit = Some(Cli::explicit(&matches));
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("warn,cashflow=info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        if !settings.kafka.is_empty() {
            info!(properties = %cashflow::config::properties::describe_properties(&settings.kafka), "librdkafka properties from -X");
        }
        // Listen before starting, so a signal during start-up still means a graceful stop.
        let signals = ShutdownSignals::new();
        let app = match App::start(settings).await {
            Ok(app) => app,
            // What the user must fix (another cashflow on the data dir, Java or the jars
            // missing): said plainly, exit code 2.
            Err(e) if e.downcast_ref::<cashflow::kafka::managed::ManagedError>().is_some_and(|m| {
                !matches!(m, cashflow::kafka::managed::ManagedError::NotStarted { .. })
            }) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        // The first line on stdout: scripts and tests read the address from it. Beyond
        // loopback it names an address others can open, never 0.0.0.0.
        let pages = cashflow::http::presenter::page_urls(app.http_addr);
        let first = pages.first().cloned().unwrap_or_else(|| format!("http://{}/", app.http_addr));
        println!("cashflow is running at {first} (Kafka: {})", app.brokers);
        if !app.http_addr.ip().is_loopback() {
            print_class_addresses(&app, &pages);
        }
        signals.recv().await;
        info!("shutting down");
        app.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// Beyond loopback: the addresses students can open, and how the presenter gets the controls.
/// Written to stdout only (the presenter's terminal), never to the log; a closed stdout is
/// no reason to stop.
fn print_class_addresses(app: &App, pages: &[String]) {
    use cashflow::http::presenter::{Controls, presenter_link};
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "students open: {}", pages.join("  "));
    let _ = match (&app.controls, pages.first()) {
        (Controls::Token { token, made: true }, Some(page)) => writeln!(
            out,
            "presenter link (it logs the page in to the controls; keep it to yourself): {}",
            presenter_link(page, token)
        ),
        (Controls::Token { .. }, _) => writeln!(
            out,
            "presenter: log in on the page with your presenter token"
        ),
        (Controls::Open, _) => writeln!(
            out,
            "every page that reaches this server controls the demo (--open-controls)"
        ),
    };
    let _ = out.flush();
}

/// SIGINT (Ctrl-C) or SIGTERM, registered when created.
struct ShutdownSignals {
    #[cfg(unix)]
    unix: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl ShutdownSignals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let unix = signal(SignalKind::interrupt())
                .and_then(|i| Ok((i, signal(SignalKind::terminate())?)))
                .ok();
            ShutdownSignals { unix }
        }
        #[cfg(not(unix))]
        ShutdownSignals {}
    }

    async fn recv(self) {
        #[cfg(unix)]
        if let Some((mut int, mut term)) = self.unix {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Opts the process out of transparent huge pages, on kernels set to give them unasked
/// (`/sys/kernel/mm/transparent_hugepage/enabled` = `always`, as on Fedora and RHEL): the
/// allocator's arena is aligned for them, so each 2 MiB the server touched would be resident
/// whole. The balance calculator's rate showed no difference within its run-to-run spread
/// (BENCHMARKS.md, "Memory per account, part 6"). mimalloc's `no_thp` feature only stops it
/// asking; it does not opt the process out. Best effort: a kernel or sandbox that refuses only
/// leaves the default.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(2) with PR_SET_THP_DISABLE reads its four arguments as unsigned longs (so
    // they are passed as such through the variadic call; the last three must be 0) and touches
    // no memory of ours.
    unsafe {
        let (on, zero) = (1 as libc::c_ulong, 0 as libc::c_ulong);
        libc::prctl(libc::PR_SET_THP_DISABLE, on, zero, zero, zero);
    }
}
