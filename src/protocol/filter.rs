//! Scala wildcard subscriptions: which topics a `white_list` or
//! `black_list` member consumes. Kafka's `TopicFilter` cleans the filter
//! (commas become alternation, spaces and surrounding quotes go), matches
//! the *whole* topic name with `java.util.regex`, and leaves out internal
//! topics when `exclude.internal.topics` is on.
//!
//! Java's dialect is approximated with `fancy-regex`, which adds to the
//! `regex` crate what Java has and it lacks: look-around, back-references,
//! atomic groups and possessive quantifiers. `\Q…\E` quoting is translated
//! here. What still differs: Java's `\p{javaLowerCase}`-style and POSIX
//! (`\p{Lower}`, `\p{Punct}`) class names, `\Z` before a final line break,
//! and `(?u)`/`(?d)`/`(?x)` flag semantics — none of which a topic filter
//! has reason to use (topic names are `[a-zA-Z0-9._-]`). A filter that does
//! not compile is an error the caller must surface: subscribing such a
//! member to nothing would silently split the group differently from the
//! Scala consumer, which refuses the member.

use fancy_regex::Regex;

use crate::ids::TopicName;
use crate::znode::Subscription;

/// The topics Kafka treats as internal (`Topic.isInternal`): the group
/// coordinator's offsets (0.8.2+) and the transaction log (0.11+).
pub const INTERNAL_TOPICS: [&str; 2] = ["__consumer_offsets", "__transaction_state"];

/// A compiled `white_list` or `black_list` filter.
#[derive(Debug, Clone)]
pub struct TopicFilter {
    re: Regex,
    white: bool,
}

/// Java's `\Q…\E`: everything between is literal (an unterminated `\Q`
/// quotes to the end).
fn unquote(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find("\\Q") {
        out.push_str(&rest[..start]);
        let quoted = &rest[start + 2..];
        let (literal, after) = match quoted.find("\\E") {
            Some(end) => (&quoted[..end], &quoted[end + 2..]),
            None => (quoted, ""),
        };
        out.push_str(&fancy_regex::escape(literal));
        rest = after;
    }
    out.push_str(rest);
    out
}

impl TopicFilter {
    /// Cleans and compiles a filter as Kafka's `TopicFilter` does.
    ///
    /// # Errors
    /// The reason, when the cleaned filter does not compile.
    pub fn new(raw: &str, white: bool) -> Result<Self, String> {
        let cleaned = raw.trim().replace(',', "|").replace(' ', "");
        let cleaned = cleaned.trim_start_matches(['"', '\'']).trim_end_matches(['"', '\'']);
        let re = Regex::new(&format!("^(?:{})$", unquote(cleaned)))
            .map_err(|e| format!("the topic filter {raw:?} does not compile: {e}"))?;
        Ok(TopicFilter { re, white })
    }

    /// Whether the filter admits `topic`.
    ///
    /// # Errors
    /// The reason, when matching gave up (a backtracking limit).
    pub fn admits(&self, topic: &str, exclude_internal: bool) -> Result<bool, String> {
        if exclude_internal && INTERNAL_TOPICS.contains(&topic) {
            return Ok(false);
        }
        let matched = self.re.is_match(topic).map_err(|e| format!("matching {topic:?} failed: {e}"))?;
        Ok(matched == self.white)
    }
}

/// The topics (with stream counts) a subscription covers, wildcards
/// resolved against `all_topics`.
///
/// # Errors
/// Why a wildcard cannot be resolved (see [`TopicFilter`]).
pub fn resolve(
    subscription: &Subscription,
    all_topics: &[String],
    exclude_internal: bool,
) -> Result<Vec<(TopicName, u32)>, String> {
    let (regex, streams, white) = match subscription {
        Subscription::Static(topics) => return Ok(topics.clone()),
        Subscription::Whitelist { regex, streams } => (regex, *streams, true),
        Subscription::Blacklist { regex, streams } => (regex, *streams, false),
    };
    let filter = TopicFilter::new(regex, white)?;
    let mut out = Vec::new();
    for topic in all_topics {
        if filter.admits(topic, exclude_internal)? {
            // Not a legal name: not a topic any member can consume.
            if let Ok(t) = TopicName::new(topic.as_str()) {
                out.push((t, streams));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(s: &Subscription, exclude_internal: bool) -> Result<Vec<String>, String> {
        let all: Vec<String> = ["orders", "orders.eu", "payments", "__consumer_offsets", "a.b", "aXb"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        Ok(resolve(s, &all, exclude_internal)?.into_iter().map(|(t, _)| t.to_string()).collect())
    }

    fn white(regex: &str) -> Subscription {
        Subscription::Whitelist { regex: regex.into(), streams: 1 }
    }

    #[test]
    fn wildcards_resolve_like_kafka_topic_filters() {
        assert_eq!(names(&white("orders.*, payments"), true).unwrap(), ["orders", "orders.eu", "payments"]);
        assert_eq!(names(&white("\"orders\""), true).unwrap(), ["orders"]);
        assert_eq!(names(&white("'orders'"), true).unwrap(), ["orders"]);
        // The whole name must match, as Java's String.matches.
        assert_eq!(names(&white("order"), true).unwrap(), Vec::<String>::new());
        let black = Subscription::Blacklist { regex: "orders.*".into(), streams: 1 };
        assert_eq!(names(&black, true).unwrap(), ["payments", "a.b", "aXb"]);
        assert_eq!(names(&black, false).unwrap(), ["payments", "__consumer_offsets", "a.b", "aXb"]);
        assert_eq!(names(&white(".*"), false).unwrap().len(), 6);
        assert_eq!(names(&white(".*"), true).unwrap().len(), 5);
    }

    #[test]
    fn java_constructs_beyond_the_regex_crate_compile() {
        // Look-ahead, possessive quantifier, atomic group, \Q..\E quoting.
        assert_eq!(names(&white("(?!payments).*"), true).unwrap(), ["orders", "orders.eu", "a.b", "aXb"]);
        assert_eq!(names(&white("orders.*+"), true).unwrap(), ["orders", "orders.eu"]);
        assert_eq!(names(&white("(?>orders)(\\.eu)?"), true).unwrap(), ["orders", "orders.eu"]);
        assert_eq!(names(&white("a.b"), true).unwrap(), ["a.b", "aXb"]);
        assert_eq!(names(&white("\\Qa.b\\E"), true).unwrap(), ["a.b"]);
        assert_eq!(names(&white("\\Qa.b"), true).unwrap(), ["a.b"]);
    }

    #[test]
    fn a_filter_that_does_not_compile_is_an_error_not_an_empty_subscription() {
        let err = names(&white("orders("), true).unwrap_err();
        assert!(err.contains("orders("), "{err}");
    }
}
