//! Which SRCs may talk to the recorder (`siprec.allowed_sources`): a list of CIDR blocks.
//! A recording server is reached by a few known SBCs and media servers; anything else that
//! sends it SIP is at best misrouted and at worst spoofing a source to make it send 200 OKs
//! (with their retransmissions) to someone else.

use std::net::IpAddr;

/// The allowed sources; empty allows every address.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AllowedSources {
    blocks: Vec<(IpAddr, u8)>,
}

impl AllowedSources {
    /// `"10.0.0.0/8, 192.0.2.7, 2001:db8::/32"`: blocks separated by commas or spaces; an
    /// address alone is a block of one.
    pub fn parse(list: &str) -> Result<AllowedSources, String> {
        let mut blocks = Vec::new();
        for item in list
            .split([',', ' '])
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let (addr, bits) = match item.split_once('/') {
                Some((a, b)) => (a, Some(b)),
                None => (item, None),
            };
            let addr: IpAddr = addr
                .parse()
                .map_err(|_| format!("{item:?} is not an address or CIDR block"))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                Some(b) => b
                    .parse::<u8>()
                    .ok()
                    .filter(|b| *b <= max)
                    .ok_or_else(|| format!("{item:?}: the prefix length must be 0 to {max}"))?,
                None => max,
            };
            blocks.push((addr, bits));
        }
        Ok(AllowedSources { blocks })
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        // An IPv4 peer on a dual-stack socket arrives as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.blocks.is_empty()
            || self.blocks.iter().any(|(net, bits)| match (net, ip) {
                (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), *bits),
                (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), *bits),
                _ => false,
            })
    }
}

fn prefix_eq(net: &[u8], addr: &[u8], bits: u8) -> bool {
    let (whole, rest) = ((bits / 8) as usize, bits % 8);
    net[..whole] == addr[..whole]
        && (rest == 0 || {
            let mask = 0xffu8 << (8 - rest);
            net[whole] & mask == addr[whole] & mask
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_and_single_addresses_are_matched_by_their_prefix() {
        let a = AllowedSources::parse("10.1.0.0/16, 192.0.2.7 2001:db8::/32").unwrap();
        for ok in ["10.1.200.3", "192.0.2.7", "2001:db8::1", "::ffff:10.1.0.1"] {
            assert!(a.allows(ok.parse().unwrap()), "{ok}");
        }
        for no in ["10.2.0.1", "192.0.2.8", "2001:db9::1", "127.0.0.1"] {
            assert!(!a.allows(no.parse().unwrap()), "{no}");
        }
        let odd = AllowedSources::parse("172.16.0.0/12").unwrap();
        assert!(odd.allows("172.31.255.255".parse().unwrap()));
        assert!(!odd.allows("172.32.0.0".parse().unwrap()));
        assert!(AllowedSources::parse("")
            .unwrap()
            .allows("203.0.113.9".parse().unwrap()));
    }

    #[test]
    fn a_bad_entry_is_named() {
        for bad in ["10.0.0.0/33", "example.com", "::/129", "10.0.0.0/x"] {
            let e = AllowedSources::parse(bad).unwrap_err();
            assert!(e.contains(bad.split('/').next().unwrap()), "{e}");
        }
    }
}
