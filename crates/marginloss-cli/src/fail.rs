//! The two ways a command fails: a usage error (exit 2) or a data error (exit 1).

use std::fmt;

/// A failed command: its exit status and the one line to print on stderr.
#[derive(Debug)]
pub struct Fail {
    /// 2 for a bad command line, 1 for bad data.
    pub code: i32,
    /// The message, without the `marginloss: ` prefix.
    pub message: String,
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Fail {}

/// A usage error: unknown loss or option, a missing or conflicting argument, a bad option
/// value. Exit code 2.
pub fn usage(message: impl Into<String>) -> Fail {
    Fail { code: 2, message: message.into() }
}

/// A data error: unreadable file, wrong dtype, shape mismatch, domain error. Exit code 1.
pub fn data(message: impl Into<String>) -> Fail {
    Fail { code: 1, message: message.into() }
}

/// A library error: a refused option value (`--margin nan`, `--p 0`, …) is a bad command
/// line, exit 2; everything else is about the data, exit 1.
impl From<marginloss::Error> for Fail {
    fn from(e: marginloss::Error) -> Self {
        match e {
            marginloss::Error::Option { .. } => usage(e.to_string()),
            _ => data(e.to_string()),
        }
    }
}
