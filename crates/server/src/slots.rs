//! Connections per client address, so one address cannot take every
//! connection the server has (in the HTTP stage, open WebSockets, sockets
//! not yet authenticated). An IPv6 client counts by its /64: one host
//! usually holds a whole /64 and can pick any address in it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The key of a client address for per-address limits: an IPv4 address
/// (IPv4-mapped IPv6 included) as it is, an IPv6 address by its /64.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Counts of open connections by address key.
#[derive(Default)]
pub struct IpSlots {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One socket's place; released on drop.
pub struct IpSlot {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl IpSlots {
    /// A place for one more connection from `ip`, unless its address key
    /// holds `max` already.
    pub fn take(&self, ip: IpAddr, max: usize) -> Option<IpSlot> {
        let ip = address_key(ip);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(ip).or_default();
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(IpSlot { open: self.open.clone(), ip })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_address_and_frees_on_drop() {
        let slots = IpSlots::default();
        let a: IpAddr = [127, 0, 0, 1].into();
        let first = slots.take(a, 2).unwrap();
        let _second = slots.take(a, 2).unwrap();
        assert!(slots.take(a, 2).is_none());
        assert!(slots.take([127, 0, 0, 2].into(), 2).is_some());
        drop(first);
        assert!(slots.take(a, 2).is_some());
    }

    #[test]
    fn ipv6_counts_by_its_64() {
        let slots = IpSlots::default();
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let _first = slots.take(a, 1).unwrap();
        assert!(slots.take(b, 1).is_none(), "same /64");
        assert!(slots.take("2001:db8:1:3::1".parse().unwrap(), 1).is_some());
        assert_eq!(address_key("::ffff:10.1.2.3".parse().unwrap()), "10.1.2.3".parse::<IpAddr>().unwrap());
    }
}
