//! The client's address, believing `X-Forwarded-For` only from `TRUSTED_PROXIES`, and
//! what a session records of the client.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use actix_web::http::header::{HeaderMap, USER_AGENT};
use actix_web::{web, FromRequest, HttpRequest};
use users_core::flows::session::ClientInfo;

use crate::state::AppState;

/// An IP block such as `10.0.0.0/8` or `::1/128` (a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Cidr {
            network: addr,
            prefix,
        })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.network, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            _ => ip,
        };
        match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix)
                };
                (u32::from(n) & mask) == (u32::from(a) & mask)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix)
                };
                (u128::from(n) & mask) == (u128::from(a) & mask)
            }
            _ => false,
        }
    }
}

/// The client's address: the peer, unless the peer is a trusted proxy. Then the
/// `X-Forwarded-For` lines, in order, are one list, walked from the right: past each
/// trusted proxy, up to the first entry that is not one, which is the client. Only
/// the right end of the list was written by proxies we trust; anything left of the
/// first untrusted entry may have been written by the client, so it is never read.
/// An entry that is not an address (`unknown`, an obfuscated `_hidden`, garbage) ends
/// the walk too: the client is then the last address walked (the peer, if none was),
/// as it is when every entry is a trusted proxy.
pub fn client_ip(peer: Option<IpAddr>, forwarded_for: &[&str], trusted: &[Cidr]) -> Option<IpAddr> {
    let peer = peer?;
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    let mut client = peer;
    if !is_trusted(client) {
        return Some(client);
    }
    let right_to_left = forwarded_for.iter().rev().flat_map(|line| line.rsplit(','));
    for entry in right_to_left {
        let Some(ip) = hop_address(entry) else {
            break;
        };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    Some(client)
}

/// The address of one `X-Forwarded-For` entry: `1.2.3.4`, `1.2.3.4:567`, `2001:db8::1`,
/// `[2001:db8::1]`, `[2001:db8::1]:443` (proxies that add the port write these);
/// `None` for anything else, an empty entry included.
fn hop_address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    let is_port = |p: &str| {
        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok()
    };
    if let Some(rest) = entry.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let ip = inside.parse::<Ipv6Addr>().ok()?;
        return (after.is_empty() || after.strip_prefix(':').is_some_and(is_port))
            .then_some(IpAddr::V6(ip));
    }
    let (host, port) = entry.split_once(':')?;
    let ip = host.parse::<Ipv4Addr>().ok()?;
    is_port(port).then_some(IpAddr::V4(ip))
}

/// The client IP of a request with these headers from this peer.
pub fn request_ip(
    state: &AppState,
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
) -> Option<IpAddr> {
    // Every line, in order: a proxy that appends (HAProxy's `option forwardfor`) adds a
    // line of its own after the client's, and reading the first alone would believe the
    // client. A line that is not text is an entry that is not an address.
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .map(|v| v.to_str().unwrap_or(""))
        .collect();
    client_ip(
        peer.map(|a| a.ip()),
        &forwarded,
        &state.settings.http.trusted_proxies,
    )
}

/// Where a request comes from: its client IP, `User-Agent` and request id.
pub struct Client(pub ClientInfo);

impl FromRequest for Client {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let ip = req
            .app_data::<web::Data<AppState>>()
            .and_then(|state| request_ip(state, req.peer_addr(), req.headers()));
        let user_agent = req
            .headers()
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // set by `telemetry::observe` on every request
        let request_id = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        std::future::ready(Ok(Client(ClientInfo {
            ip: ip.map(|ip| ip.to_string()),
            user_agent,
            request_id,
        })))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_parse_and_match() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains(ip("10.1.2.3")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(c.contains(ip("::ffff:10.9.9.9")));
        assert!(Cidr::parse("::1").unwrap().contains(ip("::1")));
        assert!(Cidr::parse("fd00::/8").unwrap().contains(ip("fd12::1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("nonsense").is_none());
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = [Cidr::parse("10.0.0.0/8").unwrap()];
        // an untrusted peer: its header is ignored
        assert_eq!(
            client_ip(Some(ip("203.0.113.9")), &["1.2.3.4"], &trusted),
            Some(ip("203.0.113.9"))
        );
        // a trusted proxy: the rightmost untrusted hop
        assert_eq!(
            client_ip(
                Some(ip("10.0.0.2")),
                &["1.2.3.4, 198.51.100.7, 10.0.0.5"],
                &trusted
            ),
            Some(ip("198.51.100.7"))
        );
        // spoofed leftmost entries do not help the client
        assert_eq!(
            client_ip(Some(ip("10.0.0.2")), &["9.9.9.9, 198.51.100.7"], &trusted),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(
            client_ip(Some(ip("10.0.0.2")), &[], &trusted),
            Some(ip("10.0.0.2"))
        );
        assert_eq!(
            client_ip(Some(ip("127.0.0.1")), &["1.2.3.4"], &[]),
            Some(ip("127.0.0.1"))
        );
        assert_eq!(client_ip(None, &["1.2.3.4"], &trusted), None);
    }

    #[test]
    fn every_line_is_read_in_order_as_one_list() {
        let trusted = [Cidr::parse("10.0.0.0/8").unwrap()];
        let peer = Some(ip("10.0.0.2"));
        // HAProxy's `option forwardfor` appends its line after the client's own: the
        // last line is the proxy's, and the client's forged first line is never read
        assert_eq!(
            client_ip(peer, &["1.2.3.4", "198.51.100.7"], &trusted),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(
            client_ip(
                peer,
                &["1.2.3.4", "5.6.7.8, 9.9.9.9", "198.51.100.7"],
                &trusted
            ),
            Some(ip("198.51.100.7"))
        );
        // the walk crosses lines as it crosses commas
        assert_eq!(
            client_ip(
                peer,
                &["1.2.3.4, 198.51.100.7", "10.0.0.9", "10.0.0.8, 10.0.0.7"],
                &trusted
            ),
            Some(ip("198.51.100.7"))
        );
    }

    #[test]
    fn entries_are_addresses_with_or_without_a_port() {
        for (entry, expected) in [
            ("198.51.100.7", "198.51.100.7"),
            ("  198.51.100.7\t", "198.51.100.7"),
            ("198.51.100.7:567", "198.51.100.7"),
            ("2001:db8::1", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            (" [2001:db8::1]:443 ", "2001:db8::1"),
            ("::ffff:198.51.100.7", "::ffff:198.51.100.7"),
        ] {
            assert_eq!(hop_address(entry), Some(ip(expected)), "{entry:?}");
        }
        for entry in [
            "",
            " ",
            "unknown",
            "_hidden",
            "garbage!",
            "198.51.100.7:",
            "198.51.100.7:port",
            "198.51.100.7:99999",
            "198.51.100.7:-1",
            "[198.51.100.7]",
            "[2001:db8::1]443",
            "[2001:db8::1]:",
            "[2001:db8::1",
            "2001:db8::1:443x",
            "fe80::1%eth0",
            "example.com",
        ] {
            assert_eq!(hop_address(entry), None, "{entry:?}");
        }
        let trusted = [Cidr::parse("10.0.0.0/8").unwrap()];
        assert_eq!(
            client_ip(
                Some(ip("10.0.0.2")),
                &["1.2.3.4, [2001:db8::7]:51000, 10.0.0.5:80"],
                &trusted
            ),
            Some(ip("2001:db8::7"))
        );
    }

    #[test]
    fn an_entry_that_is_no_address_ends_the_walk() {
        let trusted = [Cidr::parse("10.0.0.0/8").unwrap()];
        let peer = Some(ip("10.0.0.2"));
        // the client is the last address walked, never anything left of the stop
        for (lines, expected) in [
            (&["1.2.3.4, unknown, 10.0.0.5"][..], "10.0.0.5"),
            (&["1.2.3.4, _hidden, 10.0.0.5"], "10.0.0.5"),
            (&["1.2.3.4", "garbage!", "10.0.0.5, 10.0.0.6"], "10.0.0.5"),
            (&["1.2.3.4,, 10.0.0.5"], "10.0.0.5"),
            // nothing walked: the peer
            (&["1.2.3.4, unknown"], "10.0.0.2"),
            (&["1.2.3.4", ""], "10.0.0.2"),
            // an untrusted address before any stop is the client, as always
            (&["unknown, 198.51.100.7"], "198.51.100.7"),
        ] {
            assert_eq!(
                client_ip(peer, lines, &trusted),
                Some(ip(expected)),
                "{lines:?}"
            );
        }
    }

    #[test]
    fn when_every_entry_is_trusted_the_leftmost_is_the_client() {
        let trusted = [
            Cidr::parse("10.0.0.0/8").unwrap(),
            Cidr::parse("127.0.0.1").unwrap(),
        ];
        assert_eq!(
            client_ip(
                Some(ip("127.0.0.1")),
                &["10.0.0.9, 10.0.0.8", "127.0.0.1"],
                &trusted
            ),
            Some(ip("10.0.0.9"))
        );
        // HAProxy on the same host, a client on loopback: it is 127.0.0.1
        assert_eq!(
            client_ip(Some(ip("127.0.0.1")), &["127.0.0.1"], &trusted),
            Some(ip("127.0.0.1"))
        );
    }
}
