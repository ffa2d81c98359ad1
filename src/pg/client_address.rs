//! The client's network address, read from the connection's socket.

use pgrx::pg_sys::libpq::be::Port;
use std::net::IpAddr;

/// The client's address from the socket (never the reverse-DNS name, which the client's DNS
/// controls); `None` for a Unix socket.
pub fn of_port(port: &Port) -> Option<IpAddr> {
    let storage = &port.raddr.addr;
    // SAFETY: `ss_family` says which sockaddr the storage holds (a sockaddr_storage is large
    // and aligned enough for each); only that variant is read.
    unsafe {
        match storage.ss_family as i32 {
            libc::AF_INET => {
                let sin = &*(storage as *const _ as *const libc::sockaddr_in);
                Some(IpAddr::from(
                    u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                ))
            }
            libc::AF_INET6 => {
                let sin6 = &*(storage as *const _ as *const libc::sockaddr_in6);
                let v6 = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                Some(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4))
            }
            _ => None,
        }
    }
}

/// This backend's client address; `None` for a Unix socket or a process without a client.
pub fn current() -> Option<IpAddr> {
    // SAFETY: MyProcPort is this backend's connection, set before any query runs, or NULL in
    // background processes; it lives as long as the process.
    unsafe {
        let port = pgrx::pg_sys::libpq::be::MyProcPort;
        (!port.is_null()).then(|| of_port(&*port)).flatten()
    }
}
