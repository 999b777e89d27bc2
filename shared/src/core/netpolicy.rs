//! The client's address (X-Forwarded-For only from trusted proxies) and IP allowlists.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderMap;
use ipnet::IpNet;

use crate::core::config::NetworkPolicy;

/// The address a request is attributed to, after proxy handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// The peer address, or the client a chain of trusted proxies vouches for. A spoofed
/// header from an untrusted peer is ignored.
pub fn client_ip(request: &Request, policy: &NetworkPolicy) -> IpAddr {
    let peer =
        request.extensions().get::<ConnectInfo<SocketAddr>>().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    resolve(peer, request.headers(), &policy.trusted_proxies)
}

/// Whether the request came straight from a trusted proxy, whose `X-Forwarded-*` headers
/// may then be believed.
pub fn from_trusted_proxy(request: &Request, policy: &NetworkPolicy) -> bool {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|c| contains(&policy.trusted_proxies, canonical(c.0.ip())))
}

/// Stands for a client whose address a trusted proxy reported in a form that does not parse
/// (`unknown`, `1.2.3.4:99`, garbage). It belongs to no network, so every allowlist refuses it.
pub const UNPARSABLE_CLIENT: IpAddr = IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);

/// Walks `X-Forwarded-For` from the right (the hop our own proxy appended) towards the left,
/// skipping trusted proxies; the first untrusted hop is the client. A hop that does not parse
/// is that client, so it is refused rather than skipped. When every hop is a trusted proxy,
/// the left-most one is the client; with no header the peer is.
fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = canonical(peer);
    if !contains(trusted, peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().unwrap_or("\u{0}"))
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        match hop.parse::<IpAddr>().map(canonical) {
            Ok(ip) if contains(trusted, ip) => client = ip,
            Ok(ip) => return ip,
            Err(_) => return UNPARSABLE_CLIENT,
        }
    }
    client
}

/// IPv4-mapped IPv6 addresses count as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// True when `ip` is in one of `nets`; an unparsable client is in none.
pub fn contains(nets: &[IpNet], ip: IpAddr) -> bool {
    ip != UNPARSABLE_CLIENT && nets.iter().any(|net| net.contains(&ip))
}

/// True when `ip` passes a (possibly empty = open) allowlist.
pub fn allowed(list: &[IpNet], ip: IpAddr) -> bool {
    list.is_empty() || contains(list, ip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(xff).unwrap());
        h
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let trusted = vec!["10.0.0.0/24".parse().unwrap()];
        let h = headers("203.0.113.9, 198.51.100.7, 10.0.0.2");
        assert_eq!(resolve(proxy, &h, &trusted), "198.51.100.7".parse::<IpAddr>().unwrap());
        let stranger: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(resolve(stranger, &h, &trusted), stranger);
        assert_eq!(resolve(proxy, &headers("2001:db8::5"), &trusted), "2001:db8::5".parse::<IpAddr>().unwrap());
        // Only trusted proxies: the left-most of them is the client.
        assert_eq!(resolve(proxy, &headers("10.0.0.7, 10.0.0.2"), &trusted), "10.0.0.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_hop_that_does_not_parse_is_the_client_and_matches_no_network() {
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let trusted = vec!["127.0.0.1/32".parse().unwrap()];
        let loopback: Vec<IpNet> = vec!["127.0.0.0/8".parse().unwrap()];
        for xff in ["garbage", "garbage, 203.0.113.9", "203.0.113.9, garbage", "unknown", "1.2.3.4:99", "x, 127.0.0.1"]
        {
            let ip = resolve(proxy, &headers(xff), &trusted);
            if xff.ends_with("203.0.113.9") {
                assert_eq!(ip, "203.0.113.9".parse::<IpAddr>().unwrap(), "{xff}");
            } else {
                assert_eq!(ip, UNPARSABLE_CLIENT, "{xff}");
            }
            assert!(!allowed(&loopback, ip), "{xff} must not pass a loopback allowlist");
            assert!(!allowed(&["::/0".parse().unwrap()], UNPARSABLE_CLIENT), "not even an allow-all IPv6 list");
            assert_ne!(ip, proxy, "{xff}: never the proxy's own address");
        }
    }
}
