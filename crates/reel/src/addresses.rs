//! Which addresses Reel tells peers to send media to, and which one a datagram reached.
//!
//! With the default `public_ip = ""` Reel offers every address of the host: a WHIP answer
//! carries one ICE host candidate per IPv4 address of an interface that is up (loopback
//! last), and a SIPREC answer names the address the call's SRC reached. A browser on the
//! same machine refuses a loopback candidate (Chromium without a test-only flag, Firefox
//! always), so offering only 127.0.0.1 recorded nothing on the README's own path. Behind
//! NAT, `public_ip` names the one address peers can reach, as before.

use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrIn};
use std::io::IoSliceMut;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;

/// `public_ip`: the host's own addresses, or the one address peers reach (NAT, a proxy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicIp {
    Auto,
    Fixed(IpAddr),
}

impl<'de> serde::Deserialize<'de> for PublicIp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match text.trim() {
            "" | "auto" => Ok(PublicIp::Auto),
            ip => ip.parse().map(PublicIp::Fixed).map_err(|_| {
                serde::de::Error::custom(format!(
                    "public_ip: an IP address, or empty for the host's own, not {ip:?}"
                ))
            }),
        }
    }
}

/// The host's IPv4 addresses on interfaces that are up, loopback last (a publisher on the
/// same machine that accepts loopback, such as a test client, still finds one).
pub fn host_addresses() -> Vec<IpAddr> {
    let mut found: Vec<IpAddr> = nix::ifaddrs::getifaddrs()
        .map(|all| {
            all.filter(|i| {
                i.flags.contains(nix::net::if_::InterfaceFlags::IFF_UP)
                    && !i
                        .flags
                        .contains(nix::net::if_::InterfaceFlags::IFF_LOOPBACK)
            })
            .filter_map(|i| i.address?.as_sockaddr_in().map(|a| IpAddr::V4(a.ip())))
            .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.dedup();
    found.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
    found
}

/// Where WebRTC publishers are told to send, and how a datagram's destination is known.
#[derive(Debug, Clone)]
pub struct MediaAddresses {
    /// One ICE host candidate each, in this order.
    pub candidates: Vec<SocketAddr>,
    /// The socket is bound to every address and more than one is offered: each datagram's
    /// own destination (IP_PKTINFO) says which candidate it reached.
    pub per_datagram: bool,
}

impl MediaAddresses {
    pub fn new(public_ip: PublicIp, bind: IpAddr, port: u16) -> MediaAddresses {
        let ips = match public_ip {
            PublicIp::Fixed(ip) => vec![ip],
            PublicIp::Auto if bind.is_unspecified() => host_addresses(),
            PublicIp::Auto => vec![bind],
        };
        MediaAddresses {
            per_datagram: ips.len() > 1,
            candidates: ips
                .into_iter()
                .map(|ip| SocketAddr::new(ip, port))
                .collect(),
        }
    }

    /// The candidate a datagram that arrived at `to` (when known) was sent to. A fixed
    /// `public_ip` is what every datagram was sent to, whatever NAT made of it.
    pub fn destination(&self, to: Option<IpAddr>) -> SocketAddr {
        to.filter(|_| self.per_datagram)
            .and_then(|ip| self.candidates.iter().find(|c| c.ip() == ip))
            .unwrap_or(&self.candidates[0])
            .to_owned()
    }

    /// The list for the start line: `192.0.2.2:8189,127.0.0.1:8189`.
    pub fn list(&self) -> String {
        let all: Vec<String> = self.candidates.iter().map(|c| c.to_string()).collect();
        all.join(",")
    }
}

/// Asks the kernel to tell each datagram's destination address (IPv4 sockets).
pub fn want_destinations(socket: &impl AsRawFd) -> std::io::Result<()> {
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(socket.as_raw_fd()) };
    setsockopt(&fd, sockopt::Ipv4PacketInfo, &true).map_err(std::io::Error::from)
}

/// One datagram, its source and (with `want_destinations`) the address it was sent to.
/// Non-blocking: `WouldBlock` when nothing is queued.
pub fn recv_with_destination(
    socket: &impl AsRawFd,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr, Option<IpAddr>)> {
    let mut iov = [IoSliceMut::new(buf)];
    let mut control = nix::cmsg_space!(libc::in_pktinfo);
    let msg = recvmsg::<SockaddrIn>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut control),
        MsgFlags::MSG_DONTWAIT,
    )
    .map_err(std::io::Error::from)?;
    let source = msg
        .address
        .map(|a| SocketAddr::new(IpAddr::V4(a.ip()), a.port()))
        .ok_or_else(|| std::io::Error::other("datagram without a source address"))?;
    let destination = msg.cmsgs().ok().and_then(|mut all| {
        all.find_map(|c| match c {
            ControlMessageOwned::Ipv4PacketInfo(info) => Some(IpAddr::V4(Ipv4Addr::from(
                u32::from_be(info.ipi_addr.s_addr),
            ))),
            _ => None,
        })
    });
    Ok((msg.bytes, source, destination))
}

/// Sends one datagram from `source` (IP_PKTINFO), so that a host with several addresses
/// answers from the one the peer paired with, not from whichever the route prefers.
pub fn send_from(
    socket: &impl AsRawFd,
    contents: &[u8],
    source: IpAddr,
    destination: SocketAddr,
) -> std::io::Result<usize> {
    let (IpAddr::V4(from), SocketAddr::V4(to)) = (source, destination) else {
        return Err(std::io::Error::other("IPv4 only"));
    };
    let info = libc::in_pktinfo {
        ipi_ifindex: 0,
        ipi_spec_dst: libc::in_addr {
            s_addr: u32::from(from).to_be(),
        },
        ipi_addr: libc::in_addr { s_addr: 0 },
    };
    nix::sys::socket::sendmsg(
        socket.as_raw_fd(),
        &[std::io::IoSlice::new(contents)],
        &[nix::sys::socket::ControlMessage::Ipv4PacketInfo(&info)],
        MsgFlags::MSG_DONTWAIT,
        Some(&SockaddrIn::from(to)),
    )
    .map_err(std::io::Error::from)
}

/// The address a SIPREC answer names for a call from `peer`: a fixed `public_ip`, the bound
/// address, or (bound to every address) the one of ours the SRC's traffic reaches, looked
/// up once per source.
pub struct AnswerAddress {
    fixed: Option<IpAddr>,
    seen: std::collections::HashMap<IpAddr, IpAddr>,
}

impl AnswerAddress {
    pub fn new(public_ip: PublicIp, bind: IpAddr) -> AnswerAddress {
        let fixed = match public_ip {
            PublicIp::Fixed(ip) => Some(ip),
            PublicIp::Auto if bind.is_unspecified() => None,
            PublicIp::Auto => Some(bind),
        };
        AnswerAddress {
            fixed,
            seen: Default::default(),
        }
    }

    /// What the SIP engine's configuration names when nothing else is known.
    pub fn fallback(&self) -> IpAddr {
        self.fixed.unwrap_or(Ipv4Addr::LOCALHOST.into())
    }

    /// The address for a SIP message from `peer`: looked up only for an INVITE (the one
    /// request that begins a call), so other traffic, spoofed or not, costs no lookup.
    pub fn for_message(&mut self, peer: IpAddr, message: &[u8]) -> IpAddr {
        if message.starts_with(b"INVITE ") {
            self.toward(peer)
        } else {
            self.fallback()
        }
    }

    pub fn toward(&mut self, peer: IpAddr) -> IpAddr {
        if let Some(ip) = self.fixed {
            return ip;
        }
        if self.seen.len() >= 4096 {
            self.seen.clear(); // a bound against a spray of sources; lookups are cheap
        }
        let fallback = self.fallback();
        *self
            .seen
            .entry(peer)
            .or_insert_with(|| local_address_toward(peer).unwrap_or(fallback))
    }
}

/// The local address the kernel would send from to reach `peer` (no packet is sent).
pub fn local_address_toward(peer: IpAddr) -> Option<IpAddr> {
    let any: IpAddr = match peer {
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    let probe = std::net::UdpSocket::bind((any, 0)).ok()?;
    probe.connect((peer, 9)).ok()?;
    probe.local_addr().ok().map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_offers_its_own_addresses_with_loopback_last() {
        let all = host_addresses();
        assert_eq!(all.last(), Some(&IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert!(all[..all.len() - 1].iter().all(|ip| !ip.is_loopback()));
        let media = MediaAddresses::new(PublicIp::Auto, Ipv4Addr::UNSPECIFIED.into(), 8189);
        assert_eq!(media.candidates.len(), all.len());
        // A fixed address is every datagram's destination, whatever it arrived at.
        let fixed: IpAddr = "203.0.113.5".parse().unwrap();
        let media = MediaAddresses::new(PublicIp::Fixed(fixed), Ipv4Addr::UNSPECIFIED.into(), 1);
        assert_eq!(
            media.destination(Some(Ipv4Addr::LOCALHOST.into())),
            SocketAddr::new(fixed, 1)
        );
        // A socket bound to one address offers that one.
        let media = MediaAddresses::new(PublicIp::Auto, Ipv4Addr::LOCALHOST.into(), 2);
        assert_eq!(media.list(), "127.0.0.1:2");
        assert_eq!(
            local_address_toward(Ipv4Addr::LOCALHOST.into()),
            Some(Ipv4Addr::LOCALHOST.into())
        );
    }

    #[test]
    fn a_datagram_says_which_address_it_reached() {
        let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        want_destinations(&socket).unwrap();
        let port = socket.local_addr().unwrap().port();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.send_to(b"hello", ("127.0.0.3", port)).unwrap();
        socket
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let mut buf = [0u8; 64];
        let mut got = None;
        for _ in 0..200 {
            match recv_with_destination(&socket, &mut buf) {
                Ok(r) => {
                    got = Some(r);
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                Err(e) => panic!("{e}"),
            }
        }
        let (n, source, destination) = got.expect("the datagram");
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(source, sender.local_addr().unwrap());
        assert_eq!(destination, Some("127.0.0.3".parse().unwrap()));
    }
}
