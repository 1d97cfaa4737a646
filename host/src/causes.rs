//! An error and its causes in one line: the text every room uses when it reports an error that
//! came from a library (PostgreSQL's client, minijinja, the OS) with a chain of sources.

/// `error` followed by its causes, `: `-separated.
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
