//! Connections cannot be hoarded: write timeout and per-address caps (issue 14, item 4).
//!
//! The attackers are sockets bound to 127.0.0.2 (and 127.0.0.3); the probe is a fresh client
//! from 127.0.0.1 that must get `/healthz` within a second, as docs/http.md promises. Whether
//! the daemon closed a connection is read from the kernel (`TCP_INFO`), without reading from
//! the socket: a read would be the progress the write timeout waits for.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::support::Daemon;

/// The attacking address; the probe comes from 127.0.0.1.
const ATTACKER: &str = "127.0.0.2";

/// The tests that open thousands of sockets run one at a time: together they would measure
/// the machine rather than the daemon.
static HEAVY: Mutex<()> = Mutex::new(());

fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The attackers' runtime: one thread, so that on a small machine the attack leaves the
/// daemon a core (the test measures the daemon, not who gets the CPU).
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A source of `items` entries of about 2 KB of distinct text each, as a `file:` URL (no
/// fetch rules in the way), and a feed of all of them: a document of some hundreds of KB,
/// far more than a socket's buffers hold.
fn big_feed(dir: &std::path::Path, items: usize) -> String {
    let mut rss = String::from(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Big</title>\
         <link>http://big.example/</link><description>d</description>",
    );
    for n in 0..items {
        let text: String = (0..250).map(|w| format!("w{n}x{w} ")).collect();
        rss.push_str(&format!(
            "<item><title>Story {n}</title><link>http://big.example/{n}</link>\
             <guid>big-{n}</guid><pubDate>{}</pubDate><description>&lt;p&gt;{text}&lt;/p&gt;\
             </description></item>",
            chrono::DateTime::from_timestamp(1_790_000_000 + n as i64 * 60, 0)
                .expect("date")
                .to_rfc2822()
        ));
    }
    rss.push_str("</channel></rss>");
    let path = dir.join("big.rss");
    std::fs::write(&path, rss).expect("write feed");
    format!(
        "[[source]]\nname = \"big\"\nurl = \"file://{}\"\n\n[[feed]]\nname = \"all\"\nlimit = {items}\ndedup = \"none\"\n",
        path.display()
    )
}

/// Waits until `/feeds/all.atom` is at least `bytes` long; returns its length.
fn wait_for_document(daemon: &Daemon, bytes: usize) -> usize {
    let mut length = 0;
    daemon.wait_for("the big document to be rendered", || {
        let (status, body) = crate::support::blocking_get(&daemon.url("/feeds/all.atom"))?;
        length = body.len();
        Some(status == 200 && length >= bytes)
    });
    length
}

/// A connection from `from` to the daemon, with a small receive buffer when asked.
async fn connect_from(
    from: &str,
    port: u16,
    receive_buffer: Option<u32>,
) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if let Some(size) = receive_buffer {
        socket.set_recv_buffer_size(size)?;
    }
    let from: IpAddr = from.parse().expect("an address");
    socket.bind(SocketAddr::new(from, 0))?;
    socket
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
}

/// Whether the daemon has closed (FIN) or reset this connection, asked of the kernel
/// without reading.
fn closed_by_server(stream: &impl AsRawFd) -> bool {
    const TCP_CLOSE: u8 = 7;
    const TCP_CLOSE_WAIT: u8 = 8;
    // SAFETY: getsockopt(2) writes at most `len` bytes into `info`, a plain C struct.
    let (rc, info) = unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let rc = libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        );
        (rc, info)
    };
    rc != 0 || matches!(info.tcpi_state, TCP_CLOSE | TCP_CLOSE_WAIT)
}

/// One `GET path` from 127.0.0.1 on a fresh connection that must be answered within a
/// second: the status line and body, or what went wrong.
fn request_within_a_second(port: u16, path: &str) -> Result<(String, String, Duration), String> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(1);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))
        .map_err(|err| format!("connect: {err} after {:?}", started.elapsed()))?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .map_err(|err| format!("write: {err}"))?;
    let mut response = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "no complete answer within 1 s ({} bytes)",
                response.len()
            ));
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|err| err.to_string())?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(format!("no answer within 1 s ({} bytes)", response.len()))
            }
            Err(err) => {
                return Err(format!(
                    "read: {err} after {:?} ({} bytes)",
                    started.elapsed(),
                    response.len()
                ))
            }
        }
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("not HTTP: {text:?}"))?;
    let status = head.lines().next().unwrap_or_default().to_string();
    Ok((status, body.to_string(), started.elapsed()))
}

/// `/healthz` from 127.0.0.1: Ok(latency) when it says 200 ok within a second.
fn probe(port: u16) -> Result<Duration, String> {
    let (status, body, took) = request_within_a_second(port, "/healthz")?;
    if status.starts_with("HTTP/1.1 200") && body == "ok\n" {
        Ok(took)
    } else {
        Err(format!("{status}: {body:?}"))
    }
}

/// Probes `count` times, `every` apart; panics with every result unless all succeeded.
fn probe_repeatedly(port: u16, count: usize, every: Duration, during: &str) {
    let mut results = Vec::new();
    for _ in 0..count {
        let started = Instant::now();
        results.push(probe(port));
        std::thread::sleep(every.saturating_sub(started.elapsed()));
    }
    eprintln!("probes while {during}: {results:?}");
    assert!(
        results.iter().all(Result::is_ok),
        "a client from 127.0.0.1 was not answered within a second while {during}: {results:?}"
    );
}

/// A counter or gauge from `/metrics` (asked from 127.0.0.1), 0 when it is missing.
fn metric(daemon: &Daemon, series: &str) -> f64 {
    let (_, body) =
        crate::support::blocking_get(&daemon.url("/metrics")).expect("/metrics answers");
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// Sends a GET for `path` on `stream` and reads the answer's status and body (by its
/// Content-Length), leaving the connection open.
async fn get_on(stream: &mut TcpStream, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await?;
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let header_end = loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        got.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&got[..header_end]).to_ascii_lowercase();
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while got.len() < header_end + length {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        got.extend_from_slice(&buf[..n]);
    }
    Ok((status, got[header_end..header_end + length].to_vec()))
}

/// What a connection that sends nothing hears before the daemon closes it, if it does so
/// within a second: a refused connection hears a 503.
async fn heard_before_close(stream: &mut TcpStream) -> Option<String> {
    let mut got = Vec::new();
    let read_all = async {
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(1), read_all)
        .await
        .ok()?;
    Some(String::from_utf8_lossy(&got).into_owned())
}

#[test]
fn clients_that_pipeline_and_never_read_cannot_starve_another_address_and_are_cut_off() {
    let _heavy = heavy();
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = Daemon::start_with_server(
        dir.path(),
        "write_timeout = \"4s\"\nheader_timeout = \"2s\"",
        &big_feed(dir.path(), 300),
    );
    let document = wait_for_document(&daemon, 500_000);
    let port = daemon.port;
    let runtime = runtime();

    // 1,100 clients from one address, each asking for the document 40 times in one write,
    // through a small receive buffer, and never reading.
    let requests = "GET /feeds/all.atom HTTP/1.1\r\nHost: x\r\n\r\n".repeat(40);
    let attack_started = Instant::now();
    let hoarders: Vec<TcpStream> = runtime.block_on(async {
        let attackers = (0..1100).map(|_| async {
            let connect = connect_from(ATTACKER, port, Some(4096));
            // Long enough for the kernel's SYN retries (1 s, 3 s, 7 s) where a backlog
            // overflowed.
            let mut stream = tokio::time::timeout(Duration::from_secs(10), connect)
                .await
                .ok()?
                .ok()?;
            // A refused connection may already be reset: that is its answer.
            let _ = stream.write_all(requests.as_bytes()).await;
            Some(stream)
        });
        // A hundred connects in flight at a time: the attack is holding connections, not
        // overflowing a listen backlog (an old build's was 128, and a dropped handshake
        // would hold nothing).
        futures_util::stream::iter(attackers)
            .buffer_unordered(100)
            .filter_map(|stream| async { stream })
            .collect()
            .await
    });
    let still_open = || hoarders.iter().filter(|s| !closed_by_server(*s)).count();

    probe_repeatedly(
        port,
        5,
        Duration::from_millis(200),
        &format!(
            "{} clients from {ATTACKER} did not read {document}-byte answers",
            hoarders.len()
        ),
    );

    // Every one of them got a connection (a refused one was then closed).
    assert_eq!(hoarders.len(), 1100, "attackers' connects timed out");
    // At most max_connections_per_ip of them are let in; the rest are refused at once.
    let mut open = still_open();
    let deadline = Instant::now() + Duration::from_secs(2);
    while open > 64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        open = still_open();
    }
    assert!(
        open <= 64,
        "{open} of {} connections from {ATTACKER} are open after {:?} (max_connections_per_ip \
         is 64)",
        hoarders.len(),
        attack_started.elapsed()
    );
    assert!(
        open > 0,
        "no connection from {ATTACKER} is open {:?} into the attack: none was let in, or they \
         were closed before write_timeout (4 s)",
        attack_started.elapsed()
    );

    // And those let in are cut off once they have read nothing for write_timeout.
    let deadline = attack_started + Duration::from_secs(4 + 10);
    while open > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        open = still_open();
    }
    let took = attack_started.elapsed();
    assert_eq!(
        open, 0,
        "{open} connections that never read are still open after {took:?} (write_timeout is 4 s)"
    );
    assert!(
        took >= Duration::from_millis(3500),
        "they were closed after only {took:?}"
    );
    let timed_out = metric(
        &daemon,
        "feedmill_http_connections_timed_out_total{reason=\"write_timeout\"}",
    );
    let refused = metric(
        &daemon,
        "feedmill_http_connections_refused_total{reason=\"per_address\"}",
    );
    assert!(
        (1.0..=64.0).contains(&timed_out) && timed_out + refused == hoarders.len() as f64,
        "{timed_out} cut off by write_timeout and {refused} refused of {} connections",
        hoarders.len()
    );
    probe(port).expect("answered after the attack");
}

#[test]
fn idle_connections_reopened_from_one_address_cannot_starve_another() {
    let _heavy = heavy();
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = Daemon::start_with_server(
        dir.path(),
        "header_timeout = \"2s\"",
        "[[feed]]\nname = \"all\"\n",
    );
    let port = daemon.port;
    let runtime = runtime();

    // 5,000 clients from one address that each connect, say nothing, and connect again as
    // soon as they are closed, until told to stop.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let connects = Arc::new(AtomicUsize::new(0));
    let attackers: Vec<_> = (0..5000)
        .map(|_| {
            let mut stopped = stopped.clone();
            let connects = connects.clone();
            runtime.spawn(async move {
                while !*stopped.borrow() {
                    let connected = tokio::select! {
                        connected = tokio::time::timeout(
                            Duration::from_secs(3),
                            connect_from(ATTACKER, port, None),
                        ) => connected,
                        _ = stopped.changed() => return,
                    };
                    let Ok(Ok(mut stream)) = connected else {
                        // Out of ports or backlog: try again a little later, not hot.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    };
                    connects.fetch_add(1, Ordering::Relaxed);
                    let mut buf = [0u8; 512];
                    let closed = async {
                        while let Ok(n) = stream.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                        }
                    };
                    tokio::select! {
                        _ = closed => {}
                        _ = stopped.changed() => return,
                    }
                }
            })
        })
        .collect();
    // Let the flood build up, then probe through more than one header_timeout, while
    // the connections the daemon let in are closed and reopened.
    let ramp = Instant::now() + Duration::from_secs(10);
    while connects.load(Ordering::Relaxed) < 5000 && Instant::now() < ramp {
        std::thread::sleep(Duration::from_millis(20));
    }
    probe_repeatedly(
        port,
        8,
        Duration::from_millis(400),
        &format!("5,000 idle clients from {ATTACKER} reconnected as fast as they could"),
    );
    let reconnects = connects.load(Ordering::Relaxed);
    eprintln!("{reconnects} connections from {ATTACKER}");
    let _ = stop.send(true);
    runtime.block_on(async {
        for attacker in attackers {
            let _ = attacker.await;
        }
    });
    assert!(
        reconnects > 5000,
        "the attackers connected only {reconnects} times"
    );
    // The 64 idle connections let in were closed by header_timeout (and counted); every
    // other was refused (and counted).
    daemon.wait_for("the idle connections to be counted", || {
        Some(
            metric(
                &daemon,
                "feedmill_http_connections_timed_out_total{reason=\"header_timeout\"}",
            ) >= 64.0,
        )
    });
    let refused = metric(
        &daemon,
        "feedmill_http_connections_refused_total{reason=\"per_address\"}",
    );
    assert!(refused >= 4936.0, "only {refused} connections refused");
}

#[test]
fn a_connection_over_the_per_address_cap_is_refused_while_others_are_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Of 8 slots, an address's connections after its first two may take only 6.
    let daemon = Daemon::start_with_server(
        dir.path(),
        "header_timeout = \"30s\"\nmax_connections = 8\nmax_connections_per_ip = 4",
        "[[feed]]\nname = \"all\"\n",
    );
    let port = daemon.port;
    runtime().block_on(async {
        let mut held = Vec::new();
        for (from, count) in [(ATTACKER, 4), ("127.0.0.3", 2)] {
            for _ in 0..count {
                let mut stream = connect_from(from, port, None).await.expect("connect");
                let (status, _) = get_on(&mut stream, "/healthz").await.expect("answered");
                assert_eq!(status, 200, "a connection from {from} within the caps");
                held.push(stream);
            }
        }
        // A fifth from the first address: over max_connections_per_ip.
        let mut fifth = connect_from(ATTACKER, port, None).await.expect("connect");
        let heard = heard_before_close(&mut fifth).await;
        assert!(
            heard
                .as_deref()
                .is_some_and(|h| h.starts_with("HTTP/1.1 503")),
            "a fifth connection from {ATTACKER} was not refused with a 503 and closed: {heard:?}"
        );
        // A third from the second address: 6 slots are taken, the last two are kept for
        // addresses that hold fewer than two.
        let mut third = connect_from("127.0.0.3", port, None)
            .await
            .expect("connect");
        let heard = heard_before_close(&mut third).await;
        assert!(
            heard
                .as_deref()
                .is_some_and(|h| h.starts_with("HTTP/1.1 503")),
            "a third connection from 127.0.0.3 was not refused with 6 of 8 slots taken: {heard:?}"
        );
        // A fresh address is served, twice over (one of them this /metrics request).
        let took = tokio::task::spawn_blocking(move || probe(port))
            .await
            .expect("probe");
        took.expect("a client from 127.0.0.1 is served");
        let metrics =
            tokio::task::spawn_blocking(move || request_within_a_second(port, "/metrics"))
                .await
                .expect("metrics")
                .expect("/metrics answers from 127.0.0.1");
        let series = |s: &str| {
            metrics
                .1
                .lines()
                .find_map(|l| l.strip_prefix(s)?.strip_prefix(' ')?.parse::<f64>().ok())
                .unwrap_or(-1.0)
        };
        let (refused_per_address, refused_total, open) = (
            series("feedmill_http_connections_refused_total{reason=\"per_address\"}"),
            series("feedmill_http_connections_refused_total{reason=\"total\"}"),
            series("feedmill_http_connections"),
        );
        assert_eq!((refused_per_address, refused_total), (1.0, 1.0));
        assert!(
            (7.0..=8.0).contains(&open),
            "{open} connections counted open"
        );
        // A slot given back is the address's again.
        drop(held.remove(0));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut again = connect_from(ATTACKER, port, None).await.expect("connect");
            if let Ok((200, _)) = get_on(&mut again, "/healthz").await {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the freed slot was never given again"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

#[test]
fn silent_and_idle_kept_alive_connections_are_closed_after_header_timeout_and_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = Daemon::start_with_server(
        dir.path(),
        "header_timeout = \"2s\"",
        "[[feed]]\nname = \"all\"\n",
    );
    let port = daemon.port;
    runtime().block_on(async {
        let silent = connect_from(ATTACKER, port, None).await.expect("connect");
        let mut kept = connect_from(ATTACKER, port, None).await.expect("connect");
        let (status, _) = get_on(&mut kept, "/healthz").await.expect("answered");
        assert_eq!(status, 200);
        let idle_since = Instant::now();
        // A client that says `Connection: close` is closed at once, and is no timeout.
        let (status, _, _) =
            tokio::task::spawn_blocking(move || request_within_a_second(port, "/healthz"))
                .await
                .expect("request")
                .expect("answered");
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        let mut closed = [None, None];
        while closed.iter().any(Option::is_none) && idle_since.elapsed() < Duration::from_secs(10) {
            for (at, stream) in closed.iter_mut().zip([&silent, &kept]) {
                if at.is_none() && closed_by_server(stream) {
                    *at = Some(idle_since.elapsed());
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for (what, at) in [
            "a connection that never sent a request",
            "an idle kept-alive connection",
        ]
        .iter()
        .zip(closed)
        {
            let at = at.unwrap_or_else(|| panic!("{what} is still open after 10 s"));
            assert!(
                (Duration::from_millis(1500)..Duration::from_secs(6)).contains(&at),
                "{what} was closed after {at:?} (header_timeout is 2 s)"
            );
        }
    });
    assert_eq!(
        metric(
            &daemon,
            "feedmill_http_connections_timed_out_total{reason=\"header_timeout\"}"
        ),
        2.0
    );
    assert_eq!(
        metric(
            &daemon,
            "feedmill_http_connections_timed_out_total{reason=\"write_timeout\"}"
        ),
        0.0
    );
}

#[test]
fn a_slow_reader_that_keeps_reading_gets_its_whole_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = Daemon::start_with_server(
        dir.path(),
        "write_timeout = \"2s\"",
        &big_feed(dir.path(), 400),
    );
    let length = wait_for_document(&daemon, 800_000);
    let port = daemon.port;
    runtime().block_on(async {
        // A reader on a slow link: a quarter of the document at a time, 0.8 s apart, so that
        // one answer takes longer than write_timeout, though no write waits that long.
        let mut stream = connect_from(ATTACKER, port, Some(4096))
            .await
            .expect("connect");
        stream
            .write_all(b"GET /feeds/all.atom HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let started = Instant::now();
        let mut got = Vec::new();
        let mut buf = [0u8; 16384];
        let mut next_pause = length / 4;
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(err) => panic!(
                    "cut off after {} bytes, {:?}: {err}",
                    got.len(),
                    started.elapsed()
                ),
            }
            if got.len() >= next_pause {
                next_pause += length / 4;
                tokio::time::sleep(Duration::from_millis(800)).await;
            }
        }
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.starts_with("HTTP/1.1 200"),
            "{}",
            &text[..text.len().min(200)]
        );
        assert!(
            text.ends_with("</feed>"),
            "the answer was cut short ({} bytes)",
            got.len()
        );
        assert!(
            started.elapsed() > Duration::from_secs(2),
            "it was not slow: {:?}",
            started.elapsed()
        );
    });
    assert_eq!(
        metric(
            &daemon,
            "feedmill_http_connections_timed_out_total{reason=\"write_timeout\"}"
        ),
        0.0
    );
}
