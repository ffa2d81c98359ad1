use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum DpError {
    /// An argument is out of its domain (epsilon <= 0, NaN bounds, ...).
    InvalidParameter(String),
    /// Bounds, epsilon or delta changed between rows of one group.
    ParameterChanged(&'static str),
    /// A serialized state is malformed or of another version.
    CorruptState(&'static str),
    /// The exact aggregate is not finite (a float sum overflowed).
    NotFinite,
    /// OpenDP refused (its variant and message).
    OpenDp(String),
}

impl fmt::Display for DpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DpError::InvalidParameter(m) => write!(f, "{m}"),
            DpError::ParameterChanged(what) => {
                write!(f, "{what} must be the same for every row of a group")
            }
            DpError::CorruptState(m) => write!(f, "corrupt aggregate state: {m}"),
            DpError::NotFinite => write!(f, "the exact aggregate is not finite"),
            DpError::OpenDp(m) => write!(f, "OpenDP: {m}"),
        }
    }
}

impl std::error::Error for DpError {}

impl From<opendp::error::Error> for DpError {
    fn from(e: opendp::error::Error) -> Self {
        // Display of an OpenDP error shows only its kind; keep the message too.
        DpError::OpenDp(format!(
            "{:?}: {}",
            e.variant,
            e.message.unwrap_or_default()
        ))
    }
}
