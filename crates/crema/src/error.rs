//! crema's error type: every variant says what and where (file, layer, shape).
use crema_proto::ProtoError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading, writing or upgrading a Caffe file.
    #[error(transparent)]
    Proto(#[from] ProtoError),
    /// A layer refused its parameters or its inputs.
    #[error("layer {layer} ({kind}): {message}")]
    Layer {
        layer: String,
        kind: String,
        message: String,
    },
    /// The net's structure is wrong (unknown bottom, duplicate top, ...).
    #[error("net {net}: {message}")]
    Net { net: String, message: String },
    /// Anything else a caller asked for that cannot be done.
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A layer error; the layer name and type are filled in by the net.
    pub fn layer(param: &crema_proto::caffe::LayerParameter, message: impl Into<String>) -> Self {
        Error::Layer {
            layer: param.name().to_string(),
            kind: param.type_().to_string(),
            message: message.into(),
        }
    }
}

/// Early-returns a layer error when `cond` is false: `ensure!(param, cond, "fmt", args)`.
#[macro_export]
macro_rules! ensure {
    ($param:expr, $cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err($crate::Error::layer($param, format!($($fmt)+)));
        }
    };
}
