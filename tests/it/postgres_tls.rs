//! TLS to PostgreSQL where the URL asks for it (issue 17, item 1): a private cluster that
//! accepts TLS connections only (`hostssl` in `pg_hba.conf`), with a server certificate
//! for 127.0.0.1 signed by a CA of the test's own (made with `openssl`). feedmill connects
//! with `sslmode=verify-full` and that CA (`sslrootcert`), with `require` and with `prefer`;
//! `disable` is refused by the server and the error says so; a CA that did not sign the
//! server's certificate is refused by feedmill and the error says it was the certificate
//! and what to change (`sslrootcert`).
//! The daemon runs over TLS too: every connection it holds (pool and LISTEN) is encrypted.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::cluster::{path_str, Postgres};
use crate::support::{feedmill, free_port, poll, Daemon};
use std::time::Duration;

/// Runs `openssl` with `args` in `dir`, failing the test with its output if it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl (.ci/run installs it)");
    assert!(
        output.status.success(),
        "openssl {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA (`{name}.crt`, `{name}.key`) in `dir`.
fn make_ca(dir: &Path, name: &str) {
    let key = format!("{name}.key");
    let crt = format!("{name}.crt");
    let subject = format!("/CN=feedmill test {name}");
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &crt,
            "-days", "2", "-subj", &subject,
        ],
    );
}

/// The server's key and certificate (for 127.0.0.1 and localhost), signed by CA `ca`, in the
/// cluster's data directory, where the server finds them (`ssl_cert_file` and
/// `ssl_key_file` are relative to it).
fn make_server_certificate(cluster: &Postgres, dir: &Path, ca: &str) {
    let data = cluster.data();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName = IP:127.0.0.1, DNS:localhost\n",
    )
    .expect("write extensions");
    let ca_crt = format!("{ca}.crt");
    let ca_key = format!("{ca}.key");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
    for file in ["server.crt", "server.key"] {
        let target = data.join(file);
        std::fs::copy(dir.join(file), &target).expect("copy into the data directory");
        cluster.give_to_server(&target);
    }
}

/// A cluster that speaks TLS only, with a certificate signed by `certs/ca.crt`; `None` when
/// PostgreSQL is not installed (see [`Postgres::start`]).
fn tls_only_cluster(certs: &Path) -> Option<Postgres> {
    make_ca(certs, "ca");
    make_ca(certs, "other-ca");
    Postgres::start_with(|cluster| {
        make_server_certificate(cluster, certs, "ca");
        let data = cluster.data();
        let conf = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).expect("read postgresql.conf");
        text.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        std::fs::write(&conf, text).expect("write postgresql.conf");
        // TCP connections over TLS only (the socket, for pg_ctl, stays open).
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )
        .expect("write pg_hba.conf");
    })
}

/// A config on the cluster at `url`, serving on `port`, with one `file:` source.
fn config(dir: &Path, name: &str, url: &str, port: u16) -> std::path::PathBuf {
    let feed = dir.join("feed.rss");
    std::fs::write(
        &feed,
        "<rss version=\"2.0\"><channel><title>t</title><link>https://example.com/</link>\
         <item><title>over TLS</title><link>https://example.com/1</link></item></channel></rss>",
    )
    .expect("write the feed");
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nbase_url = \"http://feeds.example/\"\n\n\
             [store]\nengine = \"postgres\"\nurl = \"{url}\"\nreplica = \"{name}\"\n\n\
             [[source]]\nname = \"local\"\nurl = \"file:{}\"\nschedule = \"*/5 * * * * *\"\n\n\
             [[feed]]\nname = \"all\"\ntitle = \"All\"\nsources = [\"local\"]\n",
            path_str(&feed)
        ),
    )
    .expect("write config");
    path
}

fn migrate(config: &Path) -> Output {
    feedmill()
        .args(["store", "migrate", "-c"])
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .expect("run feedmill store migrate")
}

#[test]
fn postgres_over_tls_is_verified_where_the_url_asks_and_the_daemon_runs_on_it() {
    let certs = tempfile::tempdir().expect("tempdir");
    let Some(cluster) = tls_only_cluster(certs.path()) else {
        return;
    };
    let cluster_url = cluster.url();
    let base = cluster_url.trim_end_matches("/postgres");
    let ca = certs.path().join("ca.crt");
    let other_ca = certs.path().join("other-ca.crt");
    let dir = tempfile::tempdir().expect("tempdir");

    // The server's certificate checked against our CA and the name in the URL, or merely
    // asked for, or used when offered: each is a working connection.
    for (name, url) in [
        (
            "verify-full",
            format!(
                "{base}/postgres?sslmode=verify-full&sslrootcert={}",
                ca.display()
            ),
        ),
        ("require", format!("{base}/postgres?sslmode=require")),
        ("prefer", format!("{base}/postgres?sslmode=prefer")),
    ] {
        let output = migrate(&config(dir.path(), name, &url, free_port()));
        assert!(
            output.status.success(),
            "store migrate with sslmode={name} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    // Without TLS the server refuses, and the error passes on why (pg_hba.conf).
    let url = format!("{base}/postgres?sslmode=disable");
    let output = migrate(&config(dir.path(), "disable", &url, free_port()));
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("postgres_tls: with sslmode=disable: {stderr}");
    assert!(!output.status.success(), "sslmode=disable was let in");
    assert!(
        stderr.contains("pg_hba.conf"),
        "the refusal of a connection without TLS does not say why:\n{stderr}"
    );

    // A certificate our CA did not sign is refused, and the error says it was the certificate.
    let url = format!(
        "{base}/postgres?sslmode=verify-full&sslrootcert={}",
        other_ca.display()
    );
    let output = migrate(&config(dir.path(), "other-ca", &url, free_port()));
    let stderr = String::from_utf8_lossy(&output.stderr).to_lowercase();
    eprintln!("postgres_tls: with another CA: {stderr}");
    assert!(
        !output.status.success(),
        "a certificate signed by another CA was accepted"
    );
    assert!(
        stderr.contains("certificate") && stderr.contains("sslrootcert"),
        "the refusal of a certificate from another CA does not say so and what to change:\n{stderr}"
    );

    // The daemon, verifying: healthy, its entries stored, every connection it holds on TLS.
    let url = format!(
        "{base}/postgres?sslmode=verify-full&sslrootcert={}",
        ca.display()
    );
    let daemon_port = free_port();
    let daemon = Daemon::start_at(config(dir.path(), "daemon", &url, daemon_port), daemon_port);
    daemon.wait_for("the entry stored over TLS in all.json", || {
        let (status, body) = crate::support::blocking_get(&daemon.url("/feeds/all.json"))?;
        Some(status == 200 && String::from_utf8_lossy(&body).contains("over TLS"))
    });
    let connections = "SELECT count(*) FILTER (WHERE s.ssl AND a.query LIKE 'LISTEN%'), \
         count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl) \
         FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = 'feedmill'";
    let mut seen = String::new();
    // The LISTEN connection opens beside the pool: wait until it is there.
    let listening = poll(Duration::from_secs(10), || {
        seen = cluster.query(connections).trim().to_string();
        let counts: Vec<u32> = seen.split('|').filter_map(|n| n.parse().ok()).collect();
        Some(matches!(counts[..], [listen, tls, 0] if listen >= 1 && tls >= 1))
    });
    assert!(
        listening,
        "the daemon's connections (listening on TLS | on TLS | without TLS): {seen}"
    );
}
