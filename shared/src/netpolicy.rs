//! The client's address (X-Forwarded-For only from trusted proxies) and IP allowlists.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderMap;
use ipnet::IpNet;

use crate::config::NetworkPolicy;

/// The address a request is attributed to, after proxy handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// The peer address, or the right-most untrusted X-Forwarded-For hop when the peer is a
/// trusted proxy. A spoofed header from an untrusted peer is ignored.
pub fn client_ip(request: &Request, policy: &NetworkPolicy) -> IpAddr {
    let peer =
        request.extensions().get::<ConnectInfo<SocketAddr>>().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    resolve(peer, request.headers(), &policy.trusted_proxies)
}

fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = canonical(peer);
    if !contains(trusted, peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map_while(|hop| hop.trim().parse::<IpAddr>().ok())
        .map(canonical)
        .collect();
    hops.into_iter().rev().find(|ip| !contains(trusted, *ip)).unwrap_or(peer)
}

/// IPv4-mapped IPv6 addresses count as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

pub fn contains(nets: &[IpNet], ip: IpAddr) -> bool {
    nets.iter().any(|net| net.contains(&ip))
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
        assert_eq!(resolve(proxy, &headers("garbage"), &trusted), proxy);
        assert_eq!(resolve(proxy, &headers("2001:db8::5"), &trusted), "2001:db8::5".parse::<IpAddr>().unwrap());
    }
}
