//! An error's text with its causes, on one line, for a log field or a 503's
//! body: client libraries (tokio-postgres, reqwest) say only "db error" or
//! "error sending request" themselves; the server's message and the
//! system's error are in the error's sources.

use std::error::Error;

/// `text`, then the display of each of `error`'s sources, joined by `: `;
/// newlines (a database error's `DETAIL`) become `; `.
#[must_use]
pub fn with_causes(text: String, error: &(dyn Error + 'static)) -> String {
    let mut text = text;
    let mut source = error.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text.replace('\n', "; ")
}

/// `error` and its causes on one line.
#[must_use]
pub fn one_line(error: &(dyn Error + 'static)) -> String {
    with_causes(error.to_string(), error)
}

#[cfg(test)]
mod tests {
    use std::fmt;

    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("error connecting to server")
        }
    }
    impl Error for Outer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn the_causes_follow_on_one_line() {
        let error = Outer(std::io::Error::other("connection refused\nDETAIL: nothing listens"));
        assert_eq!(one_line(&error), "error connecting to server: connection refused; DETAIL: nothing listens");
        assert_eq!(with_causes("no answer".into(), &error), "no answer: connection refused; DETAIL: nothing listens");
    }
}
