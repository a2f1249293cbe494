//! Ranges of IP addresses (`10.0.0.0/8`, `::1/128`): the sources a listener
//! trusts to send a PROXY header.

use core::fmt;
use std::net::IpAddr;

/// A range of IP addresses: `10.0.0.0/8`, `127.0.0.1/32`, `::1/128`, or a
/// single address (`192.0.2.7`, a /32 or /128).
///
/// The address must be the first of its range (`10.0.0.1/8` is refused, with
/// `10.0.0.0/8` suggested): a typo must not widen or narrow what is trusted
/// unnoticed. IPv4 ranges also match IPv4-mapped IPv6 peers
/// (`::ffff:10.0.0.1`, as a dual-stack `[::]` listener sees IPv4 clients).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// A CIDR range that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid address range '{given}': {why}")]
pub struct CidrError {
    given: String,
    why: String,
}

impl Cidr {
    /// The first address of the range.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length (32 or 128 for one address).
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(ip) & mask == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(ip) & mask == u128::from(net)
            }
            _ => false,
        }
    }
}

impl core::str::FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why: String| CidrError {
            given: s.to_owned(),
            why,
        };
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| {
                err("not an IPv4 or IPv6 address (use 10.0.0.0/8, 127.0.0.1/32, ::1/128)".into())
            })?;
        let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && !p.starts_with('+') => n,
                _ => {
                    return Err(err(format!(
                        "the prefix length must be a number from 0 to {max}"
                    )))
                }
            },
        };
        let first = Self { addr, prefix }.first();
        if first != addr {
            return Err(err(format!(
                "{addr} is not the first address of a /{prefix} (did you mean {first}/{prefix}?)"
            )));
        }
        Ok(Self { addr, prefix })
    }
}

impl Cidr {
    /// The range's first address (the address with its host bits cleared).
    fn first(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(a) & mask).into())
            }
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn ranges_parse_and_match() {
        assert!(cidr("10.0.0.0/8").contains(ip("10.255.1.2")));
        assert!(!cidr("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(cidr("127.0.0.1/32").contains(ip("127.0.0.1")));
        assert!(!cidr("127.0.0.1/32").contains(ip("127.0.0.2")));
        assert!(cidr("127.0.0.1").contains(ip("127.0.0.1")));
        assert!(cidr("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(!cidr("0.0.0.0/0").contains(ip("::1")));
        assert!(cidr("::1/128").contains(ip("::1")));
        assert!(cidr("[::1]/128").contains(ip("::1")));
        assert!(cidr("2001:db8::/32").contains(ip("2001:db8:ffff::1")));
        assert!(!cidr("2001:db8::/32").contains(ip("2001:db9::1")));
        assert!(cidr("::/0").contains(ip("2001:db8::1")));
        // A dual-stack listener sees IPv4 clients as mapped IPv6 addresses.
        assert!(cidr("10.0.0.0/8").contains(ip("::ffff:10.1.2.3")));
        assert!(!cidr("::1/128").contains(ip("127.0.0.1")));
        assert_eq!(cidr("10.0.0.0/8").to_string(), "10.0.0.0/8");
        assert_eq!(cidr("::1").to_string(), "::1/128");
    }

    #[test]
    fn bad_ranges_say_why() {
        for (bad, why) in [
            ("10.0.0.1/8", "did you mean 10.0.0.0/8?"),
            ("10.0.0.0/33", "from 0 to 32"),
            ("::/129", "from 0 to 128"),
            ("10.0.0.0/", "from 0 to 32"),
            ("10.0.0.0/+8", "from 0 to 32"),
            ("10.0.0.0/x", "from 0 to 32"),
            ("localhost/32", "not an IPv4 or IPv6 address"),
            ("", "not an IPv4 or IPv6 address"),
            ("10.0.0/8", "not an IPv4 or IPv6 address"),
            ("2001:db8::1/32", "did you mean 2001:db8::/32?"),
        ] {
            let e = bad.parse::<Cidr>().expect_err(bad).to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
