//! The two ways a command fails: a usage error (exit 2) or a data error (exit 1).

use std::fmt;

#[derive(Debug)]
pub struct Fail {
    pub code: i32,
    pub message: String,
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Fail {}

/// A usage error: unknown loss or option, a missing or conflicting argument. Exit code 2.
pub fn usage(message: impl Into<String>) -> Fail {
    Fail { code: 2, message: message.into() }
}

/// A data error: unreadable file, wrong dtype, shape mismatch, domain error. Exit code 1.
pub fn data(message: impl Into<String>) -> Fail {
    Fail { code: 1, message: message.into() }
}

impl From<marginloss::Error> for Fail {
    fn from(e: marginloss::Error) -> Self {
        data(e.to_string())
    }
}
