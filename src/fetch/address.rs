//! The public-address rule: which addresses a request may reach, checked on the literal
//! host of every hop and, for names, by the resolvers the HTTP clients connect with
//! ([`PublicOnly`], [`NoMetadata`]), so that the address checked is the address connected
//! to; and which names are local by construction (the exemption of a source's own URL).

use super::*;

/// Whether two URLs name the same host and port (a missing port is the scheme's default):
/// the exemption of a source's own configured URL.
pub(super) fn same_host_and_port(a: &Url, b: &Url) -> bool {
    a.host().is_some()
        && a.host() == b.host()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// The hosts file the names local by construction are read from, besides their spelling.
pub(super) const HOSTS_FILE: &str = "/etc/hosts";
/// The most of the hosts file read. A blocklist of hundreds of thousands of names runs to a
/// few MiB; names past the bound are checked like any other (the safe side).
pub(super) const MAX_HOSTS_FILE: usize = 1024 * 1024;

/// Domains for private use, never delegated in the public DNS, so that no stranger owns a
/// name under them (and so decides where it points): `localhost` (RFC 6761), `local` (mDNS,
/// RFC 6762), `home.arpa` (RFC 8375), `internal` (reserved by ICANN for private use in
/// 2024), and the top-level domains RFC 6762's Appendix G found in use on private networks.
pub(crate) const LOCAL_DOMAINS: &[&str] = &[
    "localhost",
    "local",
    "home.arpa",
    "internal",
    "intranet",
    "private",
    "corp",
    "home",
    "lan",
];

/// The names local by construction, as an error lists them.
pub(super) fn local_names() -> String {
    let domains: Vec<String> = LOCAL_DOMAINS
        .iter()
        .map(|d| match *d {
            "localhost" => "localhost".to_string(),
            d => format!(".{d}"),
        })
        .collect();
    format!(
        "{}, a single label or a name in {HOSTS_FILE}",
        domains.join(", ")
    )
}

/// Whether a name in a source's configured URL is local by construction, and so may lead to
/// a private address: `localhost` or a name under one of [`LOCAL_DOMAINS`], a single label
/// (`feedserver`, as compose and Kubernetes name services: it resolves through the machine's
/// own search domains), or a name listed in the hosts file (`hosts`: lowercase, without a
/// trailing dot). Any other name's DNS belongs to whoever owns the name, who can point it
/// anywhere: it must resolve to a public address, like every other hop.
pub(super) fn local_by_construction(name: &str, hosts: &HashSet<String>) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if name.is_empty() {
        return false;
    }
    !name.contains('.')
        || hosts.contains(&name)
        || LOCAL_DOMAINS.iter().any(|domain| {
            name == *domain
                || name
                    .strip_suffix(domain)
                    .is_some_and(|label| label.ends_with('.'))
        })
}

/// The names a hosts file lists, lowercase and without a trailing dot: the operator's own,
/// local by construction. A line that maps names to an unspecified address
/// (`0.0.0.0 ads.example`, as blocklists write) makes none local: it says where a name must
/// not lead, not that a local server answers there. A missing file lists nothing; only its
/// first [`MAX_HOSTS_FILE`] bytes are read, whole lines only.
pub(super) fn read_hosts_file(path: &Path) -> HashSet<String> {
    let mut bytes = Vec::new();
    let read = std::fs::File::open(path)
        .and_then(|file| file.take(MAX_HOSTS_FILE as u64 + 1).read_to_end(&mut bytes));
    match read {
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return HashSet::new(),
        Err(err) => {
            tracing::warn!(
                path = %path.display(),
                "cannot read {}: {err}; the names it lists are checked like any other",
                path.display()
            );
            return HashSet::new();
        }
    }
    if bytes.len() > MAX_HOSTS_FILE {
        tracing::warn!(
            path = %path.display(),
            "{} is larger than {}: the names past that are checked like any other",
            path.display(),
            human_size(MAX_HOSTS_FILE as u64)
        );
        let whole_lines = bytes[..MAX_HOSTS_FILE]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |end| end + 1);
        bytes.truncate(whole_lines);
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut names = HashSet::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let mut fields = line.split_ascii_whitespace();
        let Some(address) = fields.next() else {
            continue;
        };
        // A zone (`fe80::1%eth0`) is no part of the address.
        let address = address.split('%').next().unwrap_or_default();
        match address.parse::<IpAddr>() {
            Ok(ip) if !ip.is_unspecified() => {}
            _ => continue,
        }
        for name in fields {
            let name = name.strip_suffix('.').unwrap_or(name);
            if !name.is_empty() {
                names.insert(name.to_ascii_lowercase());
            }
        }
    }
    names
}

/// `host:port` as an error names it (`127.0.0.1:9999`, `[::1]:80`).
pub(super) fn host_and_port(url: &Url) -> String {
    let port = url
        .port_or_known_default()
        .map(|p| format!(":{p}"))
        .unwrap_or_default();
    format!("{}{port}", url.host_str().unwrap_or_default())
}

/// The first cause of `err`'s type `T` in its chain of sources.
pub(super) fn find_cause<'a, T: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut cause = Some(err);
    while let Some(current) = cause {
        if let Some(found) = current.downcast_ref::<T>() {
            return Some(found);
        }
        cause = current.source();
    }
    None
}

/// A name with no public address: it resolved only to non-public ones, or to none at all.
/// What [`PublicOnly`] fails with, found again in the request error's chain of causes.
#[derive(Debug)]
pub(super) struct NotPublic {
    /// Which resolver refused it.
    pub(super) guard: Guard,
    /// What the name resolved to, sorted.
    pub(super) addresses: Vec<IpAddr>,
    /// Why it resolved to nothing, when it did.
    pub(super) lookup: Option<std::io::Error>,
}

impl std::fmt::Display for NotPublic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(err) = &self.lookup {
            return write!(f, "{err}");
        }
        let list: Vec<String> = self.addresses.iter().map(IpAddr::to_string).collect();
        let what = match self.guard {
            Guard::PublicOnly => "non-public",
            Guard::NoMetadata => "link-local (cloud metadata)",
        };
        write!(f, "resolves only to {what} addresses ({})", list.join(", "))
    }
}

// No `source`: Display already says what the lookup error says.
impl std::error::Error for NotPublic {}

pub(super) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The resolver of the guarded client: the system's (getaddrinfo on the blocking pool, as
/// reqwest's default), keeping only public addresses. The client connects only to what the
/// resolver returns, so a name that resolves to a private address (or to a public one now and a
/// private one on the next lookup) is never connected to.
#[derive(Default)]
pub(crate) struct PublicOnly(pub(super) Lookup);

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        filtered_lookup(name, self.0.clone(), Guard::PublicOnly)
    }
}

/// The resolver of a source's own configured name when it is local by construction: the
/// system's, dropping link-local (cloud metadata) addresses ([`is_metadata`]) and keeping
/// the rest, private ones included.
#[derive(Default)]
pub(crate) struct NoMetadata(pub(super) Lookup);

impl reqwest::dns::Resolve for NoMetadata {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        filtered_lookup(name, self.0.clone(), Guard::NoMetadata)
    }
}

/// Where a resolver looks names up before it filters what they resolve to.
#[derive(Debug, Clone, Default)]
pub(super) enum Lookup {
    /// The system's resolver (getaddrinfo on the blocking pool, as reqwest's default).
    #[default]
    System,
    /// A fixed table, for tests: no public-looking name resolves to loopback offline, and
    /// /etc/hosts is not the tests' to edit. A name not in it does not resolve.
    #[cfg(test)]
    Table(Arc<HashMap<String, Vec<IpAddr>>>),
}

impl Lookup {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<SocketAddr>> {
        match self {
            Lookup::System => tokio::net::lookup_host((host, 0))
                .await
                .map(Iterator::collect),
            #[cfg(test)]
            Lookup::Table(table) => table
                .get(host)
                .map(|ips| ips.iter().map(|&ip| SocketAddr::new(ip, 0)).collect())
                .ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::NotFound, format!("{host}: unknown"))
                }),
        }
    }
}

/// Which addresses a resolver keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Guard {
    /// Only public ones ([`is_public`]).
    PublicOnly,
    /// All but link-local and cloud metadata ones ([`is_metadata`]).
    NoMetadata,
}

impl Guard {
    fn keeps(self, ip: IpAddr) -> bool {
        match self {
            Guard::PublicOnly => is_public(ip),
            Guard::NoMetadata => !is_metadata(ip),
        }
    }
}

pub(super) fn filtered_lookup(
    name: reqwest::dns::Name,
    lookup: Lookup,
    guard: Guard,
) -> reqwest::dns::Resolving {
    let host = name.as_str().to_string();
    Box::pin(async move {
        let resolved = lookup.lookup(&host).await;
        match keep(&host, resolved, guard) {
            Ok(kept) => Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs),
            Err(refused) => Err(Box::new(refused) as BoxError),
        }
    })
}

/// The addresses of what `host` resolved to that `guard` keeps, or why none is left: a name
/// that resolves to a public and a private address (a rebinding attacker's favourite) keeps
/// only the public one.
pub(super) fn keep(
    host: &str,
    resolved: std::io::Result<Vec<SocketAddr>>,
    guard: Guard,
) -> Result<Vec<SocketAddr>, NotPublic> {
    let resolved = resolved.map_err(|err| NotPublic {
        guard,
        addresses: vec![],
        lookup: Some(err),
    })?;
    let (kept, refused): (Vec<SocketAddr>, Vec<SocketAddr>) = resolved
        .into_iter()
        .partition(|addr| guard.keeps(addr.ip()));
    if !kept.is_empty() {
        return Ok(kept);
    }
    let mut addresses: Vec<IpAddr> = refused.iter().map(SocketAddr::ip).collect();
    addresses.sort();
    addresses.dedup();
    let lookup = addresses.is_empty().then(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{host} resolves to no address"),
        )
    });
    Err(NotPublic {
        guard,
        addresses,
        lookup,
    })
}

/// Where a name never leads, not even the source's own: link-local addresses (169.254/16 and
/// fe80::/10; AWS, GCP, Azure, DigitalOcean and others serve instance metadata and
/// credentials at 169.254.169.254) and the metadata addresses clouds put elsewhere
/// (Alibaba's 100.100.100.200, Oracle's 192.0.0.192, AWS's fd00:ec2::254). IPv6 forms that
/// carry an IPv4 address are judged by it.
pub(crate) fn is_metadata(ip: IpAddr) -> bool {
    const V4: &[Ipv4Addr] = &[
        Ipv4Addr::new(100, 100, 100, 200),
        Ipv4Addr::new(192, 0, 0, 192),
    ];
    const AWS_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
    let v4 = |ip: Ipv4Addr| ip.is_link_local() || V4.contains(&ip);
    match ip {
        IpAddr::V4(ip) => v4(ip),
        IpAddr::V6(ip) => match embedded_v4(ip) {
            Some(ip) => v4(ip),
            None => ip.segments()[0] & 0xffc0 == 0xfe80 || ip == AWS_V6,
        },
    }
}

/// Whether a request may go to `ip` without the operator's say-so: not loopback, private,
/// link-local (cloud metadata included), unique-local, shared, multicast, broadcast,
/// unspecified, reserved, documentation or benchmarking. IPv6 forms that carry an IPv4
/// address (mapped, compatible, NAT64, 6to4) are judged by that address; other IPv6
/// addresses must be global unicast (2000::/3) outside its special blocks.
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => is_public_v6(ip),
    }
}

/// IPv4 blocks that are not public (IANA's special-purpose registry, and the rest of 240/4).
pub(super) const NOT_PUBLIC_V4: &[(u32, u32)] = &[
    (0x0000_0000, 8),  // 0.0.0.0/8: "this network", unspecified
    (0x0a00_0000, 8),  // 10.0.0.0/8: private (RFC 1918)
    (0x6440_0000, 10), // 100.64.0.0/10: shared address space (carrier-grade NAT)
    (0x7f00_0000, 8),  // 127.0.0.0/8: loopback
    (0xa9fe_0000, 16), // 169.254.0.0/16: link-local, cloud metadata (169.254.169.254)
    (0xac10_0000, 12), // 172.16.0.0/12: private (RFC 1918)
    (0xc000_0000, 24), // 192.0.0.0/24: IETF protocol assignments
    (0xc000_0200, 24), // 192.0.2.0/24: documentation (TEST-NET-1)
    (0xc058_6300, 24), // 192.88.99.0/24: 6to4 relay anycast (deprecated)
    (0xc0a8_0000, 16), // 192.168.0.0/16: private (RFC 1918)
    (0xc612_0000, 15), // 198.18.0.0/15: benchmarking
    (0xc633_6400, 24), // 198.51.100.0/24: documentation (TEST-NET-2)
    (0xcb00_7100, 24), // 203.0.113.0/24: documentation (TEST-NET-3)
    (0xe000_0000, 4),  // 224.0.0.0/4: multicast
    (0xf000_0000, 4),  // 240.0.0.0/4: reserved, and 255.255.255.255 broadcast
];

pub(super) fn is_public_v4(ip: Ipv4Addr) -> bool {
    let bits = u32::from(ip);
    !NOT_PUBLIC_V4
        .iter()
        .any(|&(net, len)| bits >> (32 - len) == net >> (32 - len))
}

/// Blocks inside global unicast (2000::/3) that are not public. Everything outside 2000::/3
/// (loopback, unspecified, link-local, site-local, unique-local, multicast, discard, local
/// NAT64, SRv6, ...) is refused as a whole, but the forms that carry an IPv4 address.
pub(super) const NOT_PUBLIC_V6: &[(u128, u32)] = &[
    (0x2001_0000 << 96, 23), // 2001::/23: IETF protocol assignments (Teredo, ORCHID, ...)
    (0x2001_0db8 << 96, 32), // 2001:db8::/32: documentation
    (0x3fff_0000 << 96, 20), // 3fff::/20: documentation
];

pub(super) fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return is_public_v4(v4);
    }
    let bits = u128::from(ip);
    let within = |net: u128, len: u32| bits >> (128 - len) == net >> (128 - len);
    within(0x2000 << 112, 3) && !NOT_PUBLIC_V6.iter().any(|&(net, len)| within(net, len))
}

/// The IPv4 address an IPv6 address stands for, where it is one of the forms that carry one:
/// IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d` (which makes `::` and `::1`
/// 0.0.0.0 and 0.0.0.1, refused either way), NAT64 `64:ff9b::a.b.c.d` and 6to4
/// `2002:AABB:CCDD::/48`.
pub(super) fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    let low = Ipv4Addr::from(bits as u32);
    match bits >> 32 {
        0 | 0xffff => return Some(low),
        0x0064_ff9b_0000_0000_0000_0000 => return Some(low),
        _ => {}
    }
    let segments = ip.segments();
    (segments[0] == 0x2002)
        .then(|| Ipv4Addr::from((u32::from(segments[1]) << 16) | u32::from(segments[2])))
}
