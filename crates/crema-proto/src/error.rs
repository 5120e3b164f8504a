//! The one error type of crema-proto: every variant names the file it is about.
use std::path::PathBuf;

/// What went wrong reading, writing or upgrading a Caffe file.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// The file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A binary protobuf file that does not decode as the message it should hold.
    #[error("{path}: not a valid {expected}: {reason}")]
    Decode {
        path: PathBuf,
        expected: String,
        reason: String,
    },
    /// A prototxt syntax or schema error, at a 1-based line and column.
    #[error("{file}:{line}:{column}: {message}")]
    Text {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// A message that decodes but breaks one of Caffe's rules (e.g. a net mixing
    /// `layer` and `layers`, a blob whose shape disagrees with its data).
    #[error("{source_name}: {message}")]
    Invalid {
        source_name: String,
        message: String,
    },
}

pub type Result<T, E = ProtoError> = std::result::Result<T, E>;

impl ProtoError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ProtoError::Io {
            path: path.into(),
            source,
        }
    }
    pub(crate) fn invalid(source_name: impl Into<String>, message: impl Into<String>) -> Self {
        ProtoError::Invalid {
            source_name: source_name.into(),
            message: message.into(),
        }
    }
}
