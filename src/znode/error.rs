use thiserror::Error;

use crate::ids::InvalidName;

/// A znode whose name or payload is not what its layout says it must be.
///
/// Always names the znode, so an operator can go and look at it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("malformed znode {path}: {problem}")]
pub struct ZnodeError {
    /// The znode's path (or, for a name, the path it was found under).
    pub path: String,
    /// What was wrong with it.
    pub problem: Problem,
}

/// What was wrong with a znode.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Problem {
    /// The payload is not UTF-8.
    #[error("payload is not UTF-8")]
    NotUtf8,
    /// The payload is not the JSON the layout needs (syntax or shape).
    #[error("invalid JSON: {0}")]
    Json(String),
    /// A required field is absent.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// A field is present with a value the layout does not allow.
    #[error("field `{field}`: {detail}")]
    BadField {
        /// The field.
        field: &'static str,
        /// Why the value is wrong.
        detail: String,
    },
    /// A payload or znode name that is not JSON is malformed.
    #[error("{0}")]
    BadText(String),
    /// A name embedded in the znode failed validation.
    #[error(transparent)]
    Name(#[from] InvalidName),
}

impl ZnodeError {
    pub(crate) fn new(path: &str, problem: Problem) -> Self {
        Self { path: path.to_owned(), problem }
    }
}

pub(crate) fn bad_field(field: &'static str, detail: impl Into<String>) -> Problem {
    Problem::BadField { field, detail: detail.into() }
}
