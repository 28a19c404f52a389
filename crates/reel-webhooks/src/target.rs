//! Which webhook URLs Reel will call. Private, loopback and link-local targets are refused
//! unless `webhooks_allow_private_targets` is set: a customer must not be able to make Reel
//! probe the network it runs in (SSRF). Checked when an endpoint is saved and again on every
//! delivery, after DNS resolution, so a name that later resolves inward is caught too.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

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
            TargetError::Private(ip) => write!(f, "webhook target {ip} is private or loopback"),
            TargetError::Unresolvable(host) => write!(f, "cannot resolve {host}"),
        }
    }
}

pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64 // 100.64/10 CGNAT
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00 // unique local
                || (v6.segments()[0] & 0xffc0) == 0xfe80 // link local
                || v6.to_ipv4_mapped().is_some_and(|v4| is_private(IpAddr::V4(v4)))
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
        assert!(is_private("100.64.0.1".parse().unwrap()));
    }
}
