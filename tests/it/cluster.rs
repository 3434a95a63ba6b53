//! A private PostgreSQL cluster for the tests that must stop, start or configure their own
//! server (replicas, TLS): Debian's binaries in `/usr/lib/postgresql/*/bin/`, run as the
//! `postgres` user when the tests run as root (PostgreSQL refuses root), in a tempdir, on a
//! free loopback port. Without the binaries a test says "skipped" loudly and passes, unless
//! `FEEDMILL_REQUIRE_POSTGRES=1` (CI) makes that a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::free_port;

/// A PostgreSQL cluster of the test's own, in a tempdir, on a free loopback port; stopped
/// (immediately) when dropped.
pub(crate) struct Postgres {
    bin: PathBuf,
    /// Holds the data directory, the socket and the server's log; owned by `postgres`.
    dir: tempfile::TempDir,
    port: u16,
}

/// The newest PostgreSQL's binaries under `/usr/lib/postgresql/`, if any has `initdb`.
fn postgres_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// The uid and gid of the `postgres` user.
fn postgres_user() -> Option<(u32, u32)> {
    let name = std::ffi::CString::new("postgres").ok()?;
    // SAFETY: getpwnam returns a pointer into static storage or null; we read two integers
    // from it at once, on this thread, before any other call could overwrite it.
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    if entry.is_null() {
        return None;
    }
    // SAFETY: checked non-null above.
    let entry = unsafe { &*entry };
    Some((entry.pw_uid, entry.pw_gid))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no memory effects.
    unsafe { libc::geteuid() == 0 }
}

impl Postgres {
    /// Initializes and starts a cluster; `None` (after a loud "skipped" line) when
    /// PostgreSQL is not installed and `FEEDMILL_REQUIRE_POSTGRES` is not `1`.
    pub(crate) fn start() -> Option<Postgres> {
        Postgres::start_with(|_| {})
    }

    /// As [`Postgres::start`], with `prepare` run between initdb and the server's start (to
    /// write its configuration: certificates, `pg_hba.conf`).
    pub(crate) fn start_with(prepare: impl FnOnce(&Postgres)) -> Option<Postgres> {
        let required = std::env::var("FEEDMILL_REQUIRE_POSTGRES").as_deref() == Ok("1");
        let user = if is_root() {
            postgres_user().map(Some)
        } else {
            // Not root: PostgreSQL runs as we do.
            Some(None)
        };
        let (Some(bin), Some(user)) = (postgres_bin(), user) else {
            assert!(
                !required,
                "FEEDMILL_REQUIRE_POSTGRES=1 but there is no /usr/lib/postgresql/*/bin/initdb (or no postgres user to run it as)"
            );
            eprintln!(
                "\n*** SKIPPED: PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb, or no postgres user); .ci/run installs it. Set FEEDMILL_REQUIRE_POSTGRES=1 to fail instead. ***\n"
            );
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("feedmill-pg")
            .tempdir()
            .expect("tempdir");
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("chown the cluster's directory to postgres");
        }
        let postgres = Postgres {
            bin,
            dir,
            port: free_port(),
        };
        let data = postgres.data();
        postgres.run(
            "initdb",
            &[
                "-D",
                path_str(&data),
                "--auth=trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
        );
        prepare(&postgres);
        postgres.start_server();
        Some(postgres)
    }

    /// Gives `path` to the user the server runs as, readable by it alone (a key file the
    /// server refuses otherwise).
    pub(crate) fn give_to_server(&self, path: &Path) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
        if let (true, Some((uid, gid))) = (is_root(), postgres_user()) {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown to postgres");
        }
    }

    pub(crate) fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// One of PostgreSQL's programs, to be run as the `postgres` user when we are root
    /// (PostgreSQL refuses root).
    fn command(&self, program: &str) -> Command {
        let binary = self.bin.join(program);
        if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(binary);
            command
        } else {
            Command::new(binary)
        }
    }

    /// Runs one of PostgreSQL's programs as the `postgres` user (PostgreSQL refuses root)
    /// and fails the test with its output if it fails.
    pub(crate) fn run(&self, program: &str, args: &[&str]) {
        let binary = self.bin.join(program);
        let output = self
            .command(program)
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|err| panic!("cannot run {}: {err}", binary.display()));
        assert!(
            output.status.success(),
            "{program} {args:?} failed ({}):\n{}{}\n--- server log ---\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
    }

    /// Starts the server and waits until it accepts connections.
    pub(crate) fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            self.port,
            path_str(self.dir.path())
        );
        let log = self.dir.path().join("server.log");
        let data = self.data();
        self.run(
            "pg_ctl",
            &[
                "-D",
                path_str(&data),
                "-l",
                path_str(&log),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    /// Stops the server (`fast`: connections are told and closed) and waits until it is
    /// gone.
    pub(crate) fn stop_server(&self) {
        let data = self.data();
        self.run(
            "pg_ctl",
            &[
                "-D",
                path_str(&data),
                "-m",
                "fast",
                "-w",
                "-t",
                "60",
                "stop",
            ],
        );
    }

    /// The URL the replicas connect to.
    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The rows `sql` answers, one a line, columns separated by `|`.
    pub(crate) fn query(&self, sql: &str) -> String {
        let port = self.port.to_string();
        let output = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-At", "-h", "127.0.0.1", "-p", &port])
            .args(["-U", "postgres", "-d", "postgres", "-c", sql])
            .stdin(Stdio::null())
            .output()
            .expect("run psql");
        assert!(
            output.status.success(),
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data();
        // Already stopped is fine; nothing to fail here.
        let _ = self
            .command("pg_ctl")
            .args(["-D", path_str(&data), "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

pub(crate) fn path_str(path: &Path) -> &str {
    path.to_str().expect("tempdir paths are UTF-8")
}
