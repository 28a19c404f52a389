//! Which webhook URLs Reel will call. Private, loopback, link-local and reserved targets are
//! refused unless `webhooks.allow_private_targets` is set: a customer must not be able to
//! make Reel probe the network it runs in (SSRF). Checked when an endpoint is saved and
//! again on every delivery, after DNS resolution; the delivery then connects to exactly the
//! addresses that were checked ([`PinnedResolver`]), so a name that resolves outward for
//! the check and inward for the connection (DNS rebinding) cannot slip through.
//!
//! IPv6 forms that carry an IPv4 address (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`,
//! translated `::ffff:0:a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`, Teredo) are
//! decoded and judged by the IPv4 rules: `[::127.0.0.1]` is loopback.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

#[derive(Debug, PartialEq, Eq)]
pub enum TargetError {
    Invalid(String),
    Private(IpAddr),
    Unresolvable(String),
}

impl std::fmt::Display for TargetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetError::Invalid(why) => write!(f, "invalid webhook URL: {why}"),
            TargetError::Private(ip) => write!(
                f,
                "webhook target {ip} is a private, loopback, link-local or reserved address \
                 (allowed only with webhooks.allow_private_targets)"
            ),
            TargetError::Unresolvable(host) => write!(f, "cannot resolve {host}"),
        }
    }
}

fn v4_refused(v4: Ipv4Addr) -> bool {
    let [a, b, c, _] = v4.octets();
    v4.is_private()
        || v4.is_loopback()
        || v4.is_link_local()
        || v4.is_broadcast()
        || v4.is_multicast()
        || a == 0 // 0/8 "this network"
        || a >= 240 // 240/4 reserved
        || a == 100 && (b & 0xc0) == 64 // 100.64/10 CGNAT
        || a == 192 && b == 0 && c == 0 // 192.0.0/24 IETF protocol assignments
        || a == 192 && b == 0 && c == 2 // documentation
        || a == 198 && b == 51 && c == 100
        || a == 203 && b == 0 && c == 113
        || a == 198 && (b & 0xfe) == 18 // 198.18/15 benchmarking
        || a == 192 && b == 88 && c == 99 // 6to4 relay anycast
}

/// The IPv4 address an IPv6 address carries, for the forms that route to one.
pub fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated but routed by some
        // stacks); :: and ::1 themselves are not IPv4.
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(tail),
        [0, 0, 0, 0, 0, 0, _, _] if !v6.is_loopback() && !v6.is_unspecified() => Some(tail),
        // ::ffff:0:a.b.c.d (SIIT translated)
        [0, 0, 0, 0, 0xffff, 0, _, _] => Some(tail),
        // 64:ff9b::/96 (NAT64 well-known) and 64:ff9b:1::/48 (local-use NAT64)
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail),
        [0x64, 0xff9b, 1, ..] => Some(tail),
        // 2002:AABB:CCDD::/48 (6to4)
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        // 2001:0::/32 (Teredo): the client's address is the last 32 bits, inverted.
        [0x2001, 0, ..] => Some(Ipv4Addr::from(!u32::from(tail))),
        _ => None,
    }
}

pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_refused(v4),
        IpAddr::V6(v6) => {
            let s0 = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s0 & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s0 & 0xffc0) == 0xfe80 // link local fe80::/10
                || (s0 & 0xffc0) == 0xfec0 // site local fec0::/10 (deprecated, still routed inward)
                || v6.segments()[..2] == [0x2001, 0xdb8] // documentation
                || v6.segments()[..4] == [0x100, 0, 0, 0] // discard-only 100::/64
                || embedded_v4(v6).is_some_and(v4_refused)
        }
    }
}

/// (host, port) of an http(s) URL.
pub fn host_port(url: &str) -> Result<(String, u16), TargetError> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| TargetError::Invalid("no scheme".into()))?;
    let default_port = match scheme {
        "http" => 80,
        "https" => 443,
        other => {
            return Err(TargetError::Invalid(format!(
                "scheme {other:?} (use http or https)"
            )))
        }
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return Err(TargetError::Invalid(
            "missing host, or credentials in the URL".into(),
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| TargetError::Invalid("bad IPv6 host".into()))?;
        let port = after
            .strip_prefix(':')
            .map(|p| p.parse())
            .transpose()
            .map_err(|_| TargetError::Invalid("bad port".into()))?;
        (h.to_string(), port.unwrap_or(default_port))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse()
                    .map_err(|_| TargetError::Invalid("bad port".into()))?,
            ),
            None => (authority.to_string(), default_port),
        }
    };
    if host.is_empty() || url.len() > 2048 {
        return Err(TargetError::Invalid("missing host or URL too long".into()));
    }
    Ok((host, port))
}

/// Resolves the URL's host and refuses private addresses unless allowed.
pub fn check(url: &str, allow_private: bool) -> Result<Vec<SocketAddr>, TargetError> {
    let (host, port) = host_port(url)?;
    let addrs: Vec<SocketAddr> = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|_| TargetError::Unresolvable(host.clone()))?
        .collect();
    if addrs.is_empty() {
        return Err(TargetError::Unresolvable(host));
    }
    if !allow_private {
        if let Some(bad) = addrs.iter().find(|a| is_private(a.ip())) {
            return Err(TargetError::Private(bad.ip()));
        }
    }
    Ok(addrs)
}

/// A ureq resolver that answers with the addresses [`check`] approved and nothing else, so
/// the connection goes where the check looked (no second DNS lookup to rebind).
#[derive(Debug, Clone)]
pub struct PinnedResolver(pub Vec<SocketAddr>);

impl ureq::unversioned::resolver::Resolver for PinnedResolver {
    fn resolve(
        &self,
        _uri: &ureq::http::Uri,
        _config: &ureq::config::Config,
        _timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let mut out = self.empty();
        for a in self.0.iter().take(16) {
            out.push(*a);
        }
        if out.is_empty() {
            return Err(ureq::Error::HostNotFound);
        }
        Ok(out)
    }
}

/// The agent a delivery uses: it connects to `addrs` (what [`check`] approved), never
/// follows a redirect (it could point inward), and gives up after `timeout`.
pub fn pinned_agent(addrs: Vec<SocketAddr>, timeout: std::time::Duration) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .max_redirects(0)
        .build();
    ureq::Agent::with_parts(
        config,
        ureq::unversioned::transport::DefaultConnector::default(),
        PinnedResolver(addrs),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_inward_targets() {
        assert!(matches!(
            check("http://127.0.0.1:9/x", false),
            Err(TargetError::Private(_))
        ));
        assert!(matches!(
            check("http://[::1]:9/x", false),
            Err(TargetError::Private(_))
        ));
        assert!(matches!(
            check("http://10.1.2.3/x", false),
            Err(TargetError::Private(_))
        ));
        assert!(matches!(
            check("http://169.254.169.254/latest", false),
            Err(TargetError::Private(_))
        ));
        assert!(check("http://127.0.0.1:9/x", true).is_ok());
        assert!(matches!(
            check("ftp://example.com/", false),
            Err(TargetError::Invalid(_))
        ));
        assert!(matches!(
            check("http://user:pw@example.com/", false),
            Err(TargetError::Invalid(_))
        ));
        assert!(matches!(
            check("https://", false),
            Err(TargetError::Invalid(_))
        ));
        assert_eq!(
            host_port("https://hooks.example.com/reel?x=1").unwrap(),
            ("hooks.example.com".into(), 443)
        );
        assert_eq!(
            host_port("http://[2001:db8::1]:8443/").unwrap(),
            ("2001:db8::1".into(), 8443)
        );
        assert!(!is_private("93.184.216.34".parse().unwrap()));
        assert!(!is_private("2606:2800:220:1::1".parse().unwrap()));
        assert!(!is_private("64:ff9b::5db8:d822".parse().unwrap())); // NAT64 of 93.184.216.34
        assert!(is_private("100.64.0.1".parse().unwrap()));
    }

    /// Every form an attacker used to reach inward addresses: each is refused, in a URL
    /// as the API and the worker check it.
    #[test]
    fn refuses_every_inward_form() {
        for host in [
            "[::127.0.0.1]",                          // IPv4-compatible loopback
            "[::ffff:127.0.0.1]",                     // IPv4-mapped
            "[::ffff:0:127.0.0.1]",                   // SIIT translated
            "[::ffff:0:a9fe:a9fe]",                   // translated 169.254.169.254 in hex
            "[64:ff9b::7f00:1]",                      // NAT64 of 127.0.0.1
            "[64:ff9b::a00:1]",                       // NAT64 of 10.0.0.1
            "[64:ff9b:1::a9fe:a9fe]",                 // local-use NAT64
            "[2002:7f00:1::]",                        // 6to4 of 127.0.0.1
            "[2002:a9fe:a9fe::1]",                    // 6to4 of 169.254.169.254
            "[2001:0:4136:e378:8000:63bf:80ff:fffe]", // Teredo, client 127.0.0.1
            "[fec0::1]",                              // site local
            "[ff02::1]",                              // multicast
            "[fd00::1]",                              // unique local
            "[fe80::1]",                              // link local
            "[2001:db8::1]",                          // documentation
            "[::]",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1", // multicast
            "239.255.255.250",
            "240.0.0.1", // reserved
            "255.255.255.255",
            "192.0.0.8",  // IETF protocol assignments
            "192.0.2.1",  // documentation
            "198.18.0.1", // benchmarking
            "198.51.100.7",
            "203.0.113.9",
            "100.100.100.200", // CGNAT (also a cloud metadata address)
            "172.16.0.1",
            "192.168.1.1",
            "127.255.255.254",
        ] {
            let url = format!("http://{host}:8080/hook");
            assert!(
                matches!(check(&url, false), Err(TargetError::Private(_))),
                "{url} was not refused: {:?}",
                check(&url, false)
            );
        }
    }

    /// A name that does not resolve at all still reaches the checked address: the agent
    /// never looks the name up again.
    #[test]
    fn the_pinned_agent_connects_to_the_checked_address_only() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut c, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let n = c.read(&mut buf).unwrap();
            c.write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        let agent = pinned_agent(vec![addr], std::time::Duration::from_secs(5));
        let resp = agent
            .post(&format!("http://rebinding.invalid:{}/hook", addr.port()))
            .send(&b"{}"[..])
            .unwrap();
        assert_eq!(resp.status().as_u16(), 204);
        let request = server.join().unwrap();
        assert!(
            request.contains("host: rebinding.invalid")
                || request.contains("Host: rebinding.invalid"),
            "{request}"
        );
    }
}
