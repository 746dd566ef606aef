//! Validation of ECS requests into domain values.
//!
//! The API edge hands each request here before anything touches state: a request that fails
//! gets an [`Error`] naming the parameter and what was wrong, and never reaches the log. The
//! wire types make every member optional, so required members are checked here too.

pub mod command;
pub mod task_definition;

use berth_api::types as api;

use crate::entity::Tag;
use crate::error::Error;

/// A member the model marks required.
pub fn required<'a, T>(value: &'a Option<T>, name: &str) -> Result<&'a T, Error> {
    value
        .as_ref()
        .ok_or_else(|| Error::invalid(format!("Missing required parameter '{name}'")))
}

/// A required string that must not be empty.
pub fn required_str<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, Error> {
    let s = required(value, name)?;
    if s.is_empty() {
        return Err(Error::invalid(format!("'{name}' must not be empty")));
    }
    Ok(s)
}

/// `maxResults` of a List call: 1 to `limit`, default `default`.
pub fn max_results(value: Option<i32>, default: usize, limit: usize) -> Result<usize, Error> {
    match value {
        None => Ok(default),
        Some(n) if n >= 1 && n as usize <= limit => Ok(n as usize),
        Some(n) => Err(Error::invalid(format!(
            "maxResults must be between 1 and {limit}; got {n}"
        ))),
    }
}

/// A list member with an upper bound on its length (and at least one item when `min1`).
pub fn list_len<T>(items: &[T], name: &str, min1: bool, max: usize) -> Result<(), Error> {
    if min1 && items.is_empty() {
        return Err(Error::invalid(format!(
            "'{name}' must contain at least one item"
        )));
    }
    if items.len() > max {
        return Err(Error::invalid(format!(
            "'{name}' can contain at most {max} items; got {}",
            items.len()
        )));
    }
    Ok(())
}

/// Maximum tags on one resource.
pub const MAX_TAGS: usize = 50;

/// Tags: at most 50, keys 1–128 characters and unique, values up to 256 characters, and no
/// `aws:` prefix (reserved by AWS in any case).
pub fn tags(tags: Option<&[api::Tag]>) -> Result<Vec<Tag>, Error> {
    let tags = tags.unwrap_or_default();
    if tags.len() > MAX_TAGS {
        return Err(Error::invalid(format!(
            "A resource can have at most {MAX_TAGS} tags; got {}",
            tags.len()
        )));
    }
    let mut out: Vec<Tag> = Vec::with_capacity(tags.len());
    for t in tags {
        let key = t.key.clone().unwrap_or_default();
        let value = t.value.clone().unwrap_or_default();
        tag_key(&key)?;
        if value.chars().count() > 256 {
            return Err(Error::invalid(format!(
                "Tag value for key '{key}' is longer than 256 characters"
            )));
        }
        if value.to_ascii_lowercase().starts_with("aws:") {
            return Err(Error::invalid(
                "Tag values may not begin with the reserved prefix 'aws:'",
            ));
        }
        if out.iter().any(|o| o.key == key) {
            return Err(Error::invalid(format!(
                "Tag key '{key}' is given more than once"
            )));
        }
        // A tag berth interprets is checked wherever it is set (a RunTask, a capacity
        // provider, a cluster, a service, a task definition), so a bad value is refused when it is given, not when used.
        if key == crate::queue::QUEUE_TIMEOUT_TAG {
            crate::queue::parse_timeout(&value)?;
        }
        if key == crate::priority::PRIORITY_TAG {
            crate::priority::parse(&value)?;
        }
        out.push(Tag { key, value });
    }
    Ok(out)
}

/// A tag key: 1 to 128 characters, not starting with `aws:`.
pub fn tag_key(key: &str) -> Result<(), Error> {
    let n = key.chars().count();
    if n == 0 || n > 128 {
        return Err(Error::invalid(format!(
            "Tag keys must be 1 to 128 characters; got {n}"
        )));
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return Err(Error::invalid(
            "Tag keys may not begin with the reserved prefix 'aws:'",
        ));
    }
    Ok(())
}

/// Merges `new` tags into `existing`: a new value replaces the old one for the same key.
pub fn merge_tags(existing: &[Tag], new: &[Tag]) -> Vec<Tag> {
    let mut out = existing.to_vec();
    for t in new {
        match out.iter_mut().find(|o| o.key == t.key) {
            Some(o) => o.value = t.value.clone(),
            None => out.push(t.clone()),
        }
    }
    out
}

/// An attribute name: 1–128 characters of letters, digits, `-`, `_`, `/`, `\` and `.`.
pub fn attribute_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.chars().count() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'/' | b'\\' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "Attribute name '{}' is invalid: use 1 to 128 letters, digits, hyphens, underscores, slashes, backslashes or periods",
            shorten(name)
        )))
    }
}

/// An attribute value: 1–128 characters of letters, digits, `-_./\@:` and spaces, not
/// starting or ending with a space.
pub fn attribute_value(value: &str) -> Result<(), Error> {
    let ok = !value.is_empty()
        && value.chars().count() <= 128
        && !value.starts_with(' ')
        && !value.ends_with(' ')
        && value.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'-' | b'_' | b'.' | b'/' | b'\\' | b'@' | b':' | b' ')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "Attribute value '{}' is invalid: use 1 to 128 letters, digits, spaces or -_./\\@: without leading or trailing spaces",
            shorten(value)
        )))
    }
}

/// At most the first 100 characters of `s`, for echoing bad input in a message.
pub fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(100).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// A value that must be one of a model enum's values.
pub fn one_of<'a>(value: &'a str, allowed: &[&str], name: &str) -> Result<&'a str, Error> {
    if allowed.contains(&value) {
        Ok(value)
    } else {
        Err(Error::invalid(format!(
            "'{}' is not a valid {name}; expected one of: {}",
            shorten(value),
            allowed.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(k: &str, v: &str) -> api::Tag {
        api::Tag {
            key: Some(k.into()),
            value: Some(v.into()),
        }
    }

    #[test]
    fn tag_rules() {
        assert_eq!(tags(Some(&[tag("team", "web")])).unwrap().len(), 1);
        assert!(tags(Some(&[tag("", "x")])).is_err());
        assert!(tags(Some(&[tag("aws:owner", "x")])).is_err());
        assert!(tags(Some(&[tag("a", "1"), tag("a", "2")])).is_err());
        assert!(tags(Some(&[tag("a", &"v".repeat(257))])).is_err());
        let many: Vec<_> = (0..51).map(|i| tag(&format!("k{i}"), "v")).collect();
        assert!(tags(Some(&many)).is_err());
    }

    #[test]
    fn tags_berth_reads_are_checked_where_they_are_set() {
        use crate::priority::PRIORITY_TAG;
        use crate::queue::QUEUE_TIMEOUT_TAG;
        assert!(
            tags(Some(&[
                tag(PRIORITY_TAG, "0"),
                tag(QUEUE_TIMEOUT_TAG, "30")
            ]))
            .is_ok()
        );
        assert!(tags(Some(&[tag(PRIORITY_TAG, "1000")])).is_ok());
        for bad in ["1001", "-1", "high", ""] {
            let e = tags(Some(&[tag(PRIORITY_TAG, bad)])).unwrap_err();
            assert!(matches!(e, Error::InvalidParameter(_)), "{bad}: {e:?}");
        }
        assert!(tags(Some(&[tag(QUEUE_TIMEOUT_TAG, "0")])).is_err());
    }

    #[test]
    fn attribute_rules() {
        assert!(attribute_name("stack").is_ok());
        assert!(attribute_name("ecs.capability/x_y-z").is_ok());
        assert!(attribute_name("").is_err());
        assert!(attribute_name("has space").is_err());
        assert!(attribute_value("us-east-1a").is_ok());
        assert!(attribute_value("a b@c:d").is_ok());
        assert!(attribute_value(" lead").is_err());
        assert!(attribute_value("tab\t").is_err());
        assert!(attribute_value(&"x".repeat(129)).is_err());
    }

    #[test]
    fn merging_replaces_values_by_key() {
        let a = vec![Tag {
            key: "a".into(),
            value: "1".into(),
        }];
        let b = vec![
            Tag {
                key: "a".into(),
                value: "2".into(),
            },
            Tag {
                key: "b".into(),
                value: "3".into(),
            },
        ];
        let m = merge_tags(&a, &b);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].value, "2");
    }
}
