//! The command line: a thin layer over the library. Errors become `anyhow` here and only here,
//! printed with their whole cause chain; config errors exit 2, runtime failures 1.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError};
use crate::fetch::Fetcher;
use crate::refresh::{refresh, RefreshOutcome};
use crate::status::source_reports;
use crate::store::copy::{copy_between, store_name, CopyError};
use crate::store::SharedStore;

/// feedmill: fetch news feeds, merge the same story, republish Atom, RSS and JSON Feed.
#[derive(Debug, Parser)]
#[command(name = "feedmill", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the config comes from: `-c FILE`, else `$FEEDMILL_CONFIG`, else `./feedmill.toml`.
#[derive(Debug, clap::Args)]
struct ConfigArg {
    /// The config file [default: $FEEDMILL_CONFIG, else ./feedmill.toml]
    #[arg(short, long, value_name = "FILE", env = "FEEDMILL_CONFIG")]
    config: Option<PathBuf>,
}

impl ConfigArg {
    fn load(&self) -> Result<Config, ConfigError> {
        Config::load(&self.path())
    }

    fn path(&self) -> PathBuf {
        self.config
            .clone()
            .unwrap_or_else(|| PathBuf::from("feedmill.toml"))
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon: fetch sources on their schedules and serve the output feeds over HTTP,
    /// until SIGTERM or SIGINT.
    Run(ConfigArg),
    /// Validate the config and print a short summary; exit 2 when it is invalid.
    Check(ConfigArg),
    /// Fetch all (or the named) sources once now, store what they give, print one line per
    /// source; exit 1 when every source failed.
    Fetch {
        #[command(flatten)]
        config: ConfigArg,
        /// Source names (default: every source).
        #[arg(value_name = "SOURCE")]
        sources: Vec<String>,
    },
    /// Print each source's state from the store (the fields of /status.json).
    Sources {
        #[command(flatten)]
        config: ConfigArg,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Import or export subscription lists (OPML).
    #[command(subcommand)]
    Opml(OpmlCommand),
    /// Move a store to another engine or place, or create or upgrade its schema.
    #[command(subcommand)]
    Store(StoreCommand),
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Copy everything from the store of OLD_CONFIG into this config's store.
    ///
    /// Every source's state and entries, and every story, from one store into another
    /// (sled to PostgreSQL and back), keeping every id, first-seen time, story and
    /// validator: the outputs stay byte-identical. Sources the new store held are
    /// replaced; others stay. Stop the daemons of both stores first.
    ///
    /// Exit 1 when a store cannot be opened, read or written (a copy run again replaces
    /// what a failed one wrote); 2 on a bad config, or when both configs name one store.
    Copy {
        /// The config whose store is copied from.
        #[arg(long, value_name = "OLD_CONFIG")]
        from: PathBuf,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Create the store, or bring its schema up to date, then exit.
    ///
    /// The daemon and every other command do it too when they open the store; this does it
    /// alone (before a first start, or after an upgrade). Exit 1 when it cannot (the store
    /// is in use, or of a newer feedmill).
    Migrate(ConfigArg),
}

#[derive(Debug, Subcommand)]
enum OpmlCommand {
    /// Print `[[source]]` TOML entries for every feed outline of an OPML file (nested
    /// outlines too; folders become tags); exit 2 on a bad file.
    Import {
        /// The OPML file ("-" for standard input).
        file: PathBuf,
    },
    /// Print the configured sources as OPML 2.0.
    Export(ConfigArg),
}

/// An error in what the user gave us (a bad file): exit 2 like a config error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            if err.downcast_ref::<ConfigError>().is_some()
                || err.downcast_ref::<UsageError>().is_some()
            {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(move || OneLine { ansi })
        .with_ansi(ansi)
        .init();
}

/// Writes log events to stderr one line each, whatever their text carries: a message may
/// quote a config error, a server's reason phrase or a feed's text, and a newline in it
/// would split one event over two lines of the journal (the second without a time or
/// level, and a forged one if a stranger chose the text). tracing-subscriber formats an
/// event into one buffer and writes it with one `write_all`, so each `write` here is one
/// whole event ending in its newline.
struct OneLine {
    /// Whether escape sequences are ours (colours on a terminal) rather than the text's.
    ansi: bool,
}

impl Write for OneLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut stderr = std::io::stderr().lock();
        stderr.write_all(&one_line_event(buf, self.ansi))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// `event` with every newline but the last, and every other control character, written as
/// an escape (`\n`, `\r`, `\x1b`); tabs stay, and so does ESC when `ansi` (the colours).
fn one_line_event(event: &[u8], ansi: bool) -> Vec<u8> {
    let (body, end) = match event.strip_suffix(b"\n") {
        Some(body) => (body, &b"\n"[..]),
        None => (event, &b""[..]),
    };
    let mut out = Vec::with_capacity(event.len() + 8);
    for &b in body {
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.push(b),
            0x1b if ansi => out.push(b),
            0..=0x1f | 0x7f => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
            _ => out.push(b),
        }
    }
    out.extend_from_slice(end);
    out
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(arg) => {
            let config = arg.load()?;
            runtime()?.block_on(crate::daemon::run(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check(arg) => {
            let config = arg.load()?;
            print!("{}", summary(&config));
            Ok(ExitCode::SUCCESS)
        }
        Command::Fetch { config, sources } => fetch(config.load()?, &sources),
        Command::Opml(OpmlCommand::Import { file }) => {
            let name = file.display().to_string();
            let text = if name == "-" {
                std::io::read_to_string(std::io::stdin())
            } else {
                std::fs::read_to_string(&file)
            }
            .map_err(|err| UsageError(format!("cannot read {name}: {err}")))?;
            let toml =
                crate::config::opml::import(&text, &name).map_err(|e| UsageError(e.to_string()))?;
            print!("{toml}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Opml(OpmlCommand::Export(arg)) => {
            print!("{}", crate::config::opml::export(&arg.load()?));
            Ok(ExitCode::SUCCESS)
        }
        Command::Store(StoreCommand::Copy { from, config }) => {
            let (old, new) = (Config::load(&from)?, config.load()?);
            let report = copy_between(&old.store, &new.store).map_err(|err| match err {
                CopyError::SameStore(_) => anyhow::Error::new(UsageError(err.to_string())),
                other => anyhow::Error::new(other),
            })?;
            println!(
                "copied {} sources, {} entries, {} story joins from {} to {}",
                report.sources,
                report.entries,
                report.joins,
                store_name(&old.store),
                store_name(&new.store)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Store(StoreCommand::Migrate(arg)) => {
            println!("{}", crate::store::copy::migrate(&arg.load()?.store)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Sources { config, json } => {
            let config = config.load()?;
            let store = crate::store::open(&config.store)?;
            let reports = source_reports(&config.sources, &store)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            } else {
                println!(
                    "{:<20} {:>6} {:>6} {:>5}  {:<25} {:<25} {:<16} ERROR",
                    "SOURCE", "STATUS", "ITEMS", "FAILS", "LAST FETCH", "NEXT FETCH", "FETCHED BY"
                );
                for r in reports {
                    let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
                        t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                            .unwrap_or_else(|| "never".to_string())
                    };
                    println!(
                        "{:<20} {:>6} {:>6} {:>5}  {:<25} {:<25} {:<16} {}",
                        r.name,
                        r.last_status
                            .map(|s| s.to_string())
                            .unwrap_or_else(|| "-".into()),
                        r.items,
                        r.consecutive_failures,
                        time(r.last_fetch),
                        time(r.next_fetch),
                        r.fetched_by.as_deref().unwrap_or("-"),
                        r.last_error.unwrap_or_default()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Prints `report` in one write (stdout is line-buffered: a line per source was a write per
/// source). A reader that went away (`feedmill fetch | head`) is not an error.
fn print_report(report: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(report.as_bytes()).and_then(|()| out.flush()) {
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// What `feedmill check` prints for a valid config.
fn summary(config: &Config) -> String {
    let mut out = format!(
        "{}: valid\n  {} sources, {} feeds\n  listen {} (public URL {})\n  store {}\n",
        config.path.display(),
        config.sources.len(),
        config.feeds.len(),
        config.server.listen,
        config.server.base_url,
        config.store.location()
    );
    for feed in &config.feeds {
        out.push_str(&format!(
            "  feed {:<12} {} sources -> {}feeds/{}.atom (.rss, .json)\n",
            feed.name,
            feed.sources.len(),
            config.server.base_url,
            feed.name
        ));
    }
    out
}

fn fetch(config: Config, names: &[String]) -> anyhow::Result<ExitCode> {
    for name in names {
        if config.source(name).is_none() {
            return Err(ConfigError::Invalid {
                location: crate::config::Location {
                    path: config.path.clone(),
                    line_col: None,
                },
                message: format!("no [[source]] is named {name:?}; `feedmill sources` lists them"),
            }
            .into());
        }
    }
    let selected: Vec<_> = config
        .sources
        .iter()
        .filter(|s| names.is_empty() || names.contains(&s.name))
        .cloned()
        .collect();
    let store = crate::store::open(&config.store)?;
    let fetcher = Arc::new(Fetcher::new(&config.fetch)?);
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let runtime = runtime()?;
    let fetch_all = |store: &SharedStore| {
        runtime.block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            for (i, source) in selected.iter().cloned().enumerate() {
                let (fetcher, store, metrics) = (fetcher.clone(), store.clone(), metrics.clone());
                tasks.spawn(async move {
                    (
                        i,
                        refresh(
                            &source,
                            &fetcher,
                            &store,
                            &metrics,
                            crate::clock::Clock::System,
                            None,
                        )
                        .await,
                    )
                });
            }
            let mut results = vec![None; selected.len()];
            let total = selected.len();
            let mut done = 0;
            let progress = std::io::stderr().is_terminal();
            while let Some(joined) = tasks.join_next().await {
                if let Ok((i, result)) = joined {
                    results[i] = Some(result.map_err(|e| e.to_string()));
                }
                done += 1;
                if progress {
                    eprint!("\rfetched {done}/{total}");
                }
            }
            if progress {
                eprintln!();
            }
            results
        })
    };
    let mut results = fetch_all(&store);
    // Found corrupt by this run (a page that opening did not read): replaced by an empty
    // store, one log line saying where the old one went, and every source fetched again.
    if let Some(reason) = store.corruption() {
        store.rebuild(&reason)?;
        results = fetch_all(&store);
    }
    let wrote = results.iter().any(|result| {
        matches!(result, Some(Ok(RefreshOutcome::Stored { summary, .. })) if summary.changed())
    });
    if wrote {
        // The daemon that opens the store next then starts without replaying this fetch.
        store.close()?;
    } else {
        store.flush()?;
    }
    let mut failed = 0;
    let mut report = String::new();
    for (source, result) in selected.iter().zip(results) {
        let line = match result {
            Some(Ok(RefreshOutcome::Stored {
                status,
                entries,
                summary,
            })) => format!(
                "ok      {status} {entries} entries ({} new, {} updated)",
                summary.new, summary.updated
            ),
            Some(Ok(RefreshOutcome::NotModified)) => "ok      304 not modified".to_string(),
            Some(Ok(RefreshOutcome::Disabled)) => {
                failed += 1;
                "SKIPPED disabled after 410 Gone; change its config to try again".to_string()
            }
            Some(Ok(RefreshOutcome::Failed(reason))) => {
                failed += 1;
                format!("FAILED  {reason}")
            }
            // `fetch` claims nothing: it fetches what it is asked to.
            Some(Ok(RefreshOutcome::Unclaimed(_))) => {
                "ok      fetched by another replica".to_string()
            }
            Some(Err(err)) => {
                failed += 1;
                format!("FAILED  {err}")
            }
            None => {
                failed += 1;
                "FAILED  the fetch task stopped".to_string()
            }
        };
        report.push_str(&format!("{:<20} {line}\n", source.name));
    }
    print_report(&report)?;
    if !selected.is_empty() && failed == selected.len() {
        Ok(ExitCode::from(1))
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

#[cfg(test)]
mod tests {
    use super::one_line_event;

    #[test]
    fn a_log_event_is_one_line_whatever_its_text() {
        let event =
            b"2026-12-01T10:00:00Z ERROR feedmill: invalid array\nexpected `]`\r\n\x1b[31mfake\n";
        let line = one_line_event(event, false);
        assert_eq!(
            String::from_utf8_lossy(&line),
            "2026-12-01T10:00:00Z ERROR feedmill: invalid array\\nexpected `]`\\r\\n\\x1b[31mfake\n"
        );
        assert_eq!(
            one_line_event(b"\x1b[1mINFO\x1b[0m\tok\n", true),
            b"\x1b[1mINFO\x1b[0m\tok\n"
        );
        assert_eq!(one_line_event(b"no end", false), b"no end");
    }
}
