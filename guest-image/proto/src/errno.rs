//! Errno names scenarios may expect ("EINVAL"), validated on the host.
use std::fmt;

const NAMES: &[(&str, i32)] = &[
    ("EPERM", 1),
    ("ENOENT", 2),
    ("EIO", 5),
    ("E2BIG", 7),
    ("EBADF", 9),
    ("EAGAIN", 11),
    ("ENOMEM", 12),
    ("EACCES", 13),
    ("EFAULT", 14),
    ("EBUSY", 16),
    ("EEXIST", 17),
    ("ENODEV", 19),
    ("ENOTDIR", 20),
    ("EINVAL", 22),
    ("ENOTTY", 25),
    ("ENOSPC", 28),
    ("EDEADLK", 35),
    ("ENOSYS", 38),
    ("EOPNOTSUPP", 95),
];

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

impl Errno {
    pub fn name(self) -> String {
        NAMES
            .iter()
            .find(|(_, n)| *n == self.0)
            .map(|(s, _)| s.to_string())
            .unwrap_or_else(|| format!("errno {}", self.0))
    }
    pub fn parse(s: &str) -> Result<Errno, String> {
        NAMES.iter().find(|(n, _)| *n == s).map(|(_, v)| Errno(*v)).ok_or_else(|| {
            format!(
                "`{s}` is not a known errno name (known: {})",
                NAMES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            )
        })
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

string_serde!(Errno);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(Errno::parse("E2BIG").unwrap(), Errno(7));
        assert_eq!(Errno(22).to_string(), "EINVAL");
        assert_eq!(Errno(200).to_string(), "errno 200");
        assert!(Errno::parse("EWHAT").unwrap_err().contains("not a known errno"));
    }
}
