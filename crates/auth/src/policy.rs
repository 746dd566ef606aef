//! IAM-style identity policies: the JSON subset ECS users already write, and its evaluation.
//!
//! ```text
//!  {"Version": "2012-10-17",
//!   "Statement": [{"Effect": "Allow" | "Deny",
//!                  "Action" | "NotAction": "ecs:Describe*" | [...],
//!                  "Resource" | "NotResource": "arn:aws:ecs:*:*:cluster/prod" | [...],
//!                  "Condition": {"ArnLike": {"ecs:cluster": "arn:aws:ecs:*:*:cluster/prod"}}}]}
//! ```
//! Evaluation is IAM's: a request is denied unless some statement allows it, and any
//! statement that denies it wins over every allow. A request touching several resources is
//! allowed only if each of them is. Actions match case-insensitively, resources and condition
//! values case-sensitively; `*` and `?` are wildcards. ARNs (in `Resource` and `Arn*`
//! conditions) match colon-separated part by part, so a wildcard never spans parts.
//!
//! A policy is checked completely when it is parsed (sizes, operators, condition keys), so an
//! accepted policy always evaluates, in time bounded by its size.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Longest policy document accepted, in bytes (IAM's managed-policy limit).
pub const MAX_POLICY_BYTES: usize = 6144;
const MAX_STATEMENTS: usize = 100;
const MAX_VALUES: usize = 100;
const MAX_VALUE_LEN: usize = 2048;

/// The condition keys berth's requests carry.
pub const CONDITION_KEYS: &[&str] = &[
    // The cluster a request acts in, as an ARN (absent for requests outside any cluster).
    "ecs:cluster",
    // The calling principal's name.
    "aws:username",
];

/// Why a policy document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the policy document is malformed: {0}")]
pub struct PolicyError(pub String);

fn malformed(message: impl Into<String>) -> PolicyError {
    PolicyError(message.into())
}

/// A JSON value that may be one item or a list of them, as IAM allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

/// By the JSON's shape (an array or not), so that an error inside an item is reported as it
/// is rather than as "matched no variant".
impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_json::Value::deserialize(d)?;
        if value.is_array() {
            Vec::<T>::deserialize(value)
                .map(OneOrMany::Many)
                .map_err(D::Error::custom)
        } else {
            T::deserialize(value)
                .map(OneOrMany::One)
                .map_err(D::Error::custom)
        }
    }
}

impl<T> OneOrMany<T> {
    pub fn as_slice(&self) -> &[T] {
        match self {
            OneOrMany::One(t) => std::slice::from_ref(t),
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    Allow,
    Deny,
}

/// One statement of a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Statement {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    pub effect: Effect,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<OneOrMany<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_action: Option<OneOrMany<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<OneOrMany<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_resource: Option<OneOrMany<String>>,
    /// operator → key → values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<BTreeMap<String, BTreeMap<String, OneOrMany<String>>>>,
}

/// An identity policy: what a credential may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Policy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub statement: OneOrMany<Statement>,
}

/// The answer for one action on one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// No statement allows it.
    ImplicitDeny,
    /// A statement denies it (its `Sid`, if it has one).
    ExplicitDeny(Option<String>),
}

/// A request refused by a policy: which resource, and whether a statement denied it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub action: String,
    pub resource: String,
    pub explicit: bool,
}

impl Denial {
    /// AWS's wording of an `AccessDeniedException` for `principal` (an ARN).
    pub fn message(&self, principal: &str) -> String {
        let why = if self.explicit {
            "with an explicit deny in an identity-based policy".to_owned()
        } else {
            format!(
                "because no identity-based policy allows the {} action",
                self.action
            )
        };
        format!(
            "User: {principal} is not authorized to perform: {} on resource: {} {why}",
            self.action, self.resource
        )
    }
}

/// Condition operators berth evaluates; `...IfExists` variants of each are accepted too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    ArnLike,
    ArnNotLike,
    Null,
}

impl Operator {
    /// The operator, whether it is an `IfExists` variant.
    fn parse(name: &str) -> Option<(Operator, bool)> {
        let (base, if_exists) = match name.strip_suffix("IfExists") {
            Some(b) => (b, true),
            None => (name, false),
        };
        let op = match base {
            "StringEquals" => Operator::StringEquals,
            "StringNotEquals" => Operator::StringNotEquals,
            "StringEqualsIgnoreCase" => Operator::StringEqualsIgnoreCase,
            "StringNotEqualsIgnoreCase" => Operator::StringNotEqualsIgnoreCase,
            "StringLike" => Operator::StringLike,
            "StringNotLike" => Operator::StringNotLike,
            "ArnEquals" | "ArnLike" => Operator::ArnLike,
            "ArnNotEquals" | "ArnNotLike" => Operator::ArnNotLike,
            "Null" if !if_exists => Operator::Null,
            _ => return None,
        };
        Some((op, if_exists))
    }

    fn negated(self) -> bool {
        matches!(
            self,
            Operator::StringNotEquals
                | Operator::StringNotEqualsIgnoreCase
                | Operator::StringNotLike
                | Operator::ArnNotLike
        )
    }

    /// Whether `value` matches `pattern` in this operator's positive sense.
    fn matches(self, pattern: &str, value: &str) -> bool {
        match self {
            Operator::StringEquals | Operator::StringNotEquals => pattern == value,
            Operator::StringEqualsIgnoreCase | Operator::StringNotEqualsIgnoreCase => {
                pattern.eq_ignore_ascii_case(value)
            }
            Operator::StringLike | Operator::StringNotLike => glob(pattern, value, false),
            Operator::ArnLike | Operator::ArnNotLike => arn_like(pattern, value),
            Operator::Null => unreachable!("Null is evaluated on presence"),
        }
    }
}

impl Policy {
    /// Parses and checks a policy document.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(malformed(format!(
                "it is {} bytes; the limit is {MAX_POLICY_BYTES}",
                text.len()
            )));
        }
        let policy: Policy = serde_json::from_str(text).map_err(|e| malformed(e.to_string()))?;
        policy.check()?;
        Ok(policy)
    }

    /// Checks a policy built in code or parsed: the same rules either way.
    pub fn check(&self) -> Result<(), PolicyError> {
        if let Some(v) = &self.version
            && v != "2012-10-17"
            && v != "2008-10-17"
        {
            return Err(malformed(format!(
                "Version must be 2012-10-17, not '{}'",
                shorten(v)
            )));
        }
        let statements = self.statement.as_slice();
        if statements.is_empty() || statements.len() > MAX_STATEMENTS {
            return Err(malformed(format!(
                "a policy has 1 to {MAX_STATEMENTS} statements"
            )));
        }
        for (i, s) in statements.iter().enumerate() {
            check_statement(s).map_err(|e| malformed(format!("Statement[{i}]: {}", e.0)))?;
        }
        Ok(())
    }

    /// The statements.
    pub fn statements(&self) -> &[Statement] {
        self.statement.as_slice()
    }

    /// Evaluates one action on one resource with the request's condition keys
    /// (`(key, value)`, keys as in [`CONDITION_KEYS`]).
    pub fn evaluate(&self, action: &str, resource: &str, context: &[(&str, &str)]) -> Decision {
        let mut allowed = false;
        for s in self.statements() {
            if !s.applies(action, resource, context) {
                continue;
            }
            match s.effect {
                Effect::Deny => return Decision::ExplicitDeny(s.sid.clone()),
                Effect::Allow => allowed = true,
            }
        }
        if allowed {
            Decision::Allow
        } else {
            Decision::ImplicitDeny
        }
    }

    /// Whether `action` is allowed on every resource in every context: an `Allow` on `"*"`
    /// with no condition names it, and no `Deny` names it. Then what a request touches cannot
    /// change the answer, so callers skip working it out (building a request's ARNs costs
    /// more than the policy evaluation itself); otherwise they call [`Policy::authorize`].
    pub fn allows_everywhere(&self, action: &str) -> bool {
        let mut allowed = false;
        for s in self.statements() {
            if !s.names_action(action) {
                continue;
            }
            match s.effect {
                Effect::Deny => return false,
                Effect::Allow => {
                    allowed |= s
                        .resource
                        .as_ref()
                        .is_some_and(|r| r.as_slice().iter().any(|p| p == "*"))
                        && s.condition.as_ref().is_none_or(BTreeMap::is_empty);
                }
            }
        }
        allowed
    }

    /// Allows `action` only if it is allowed on every one of `resources` (`"*"` when the
    /// action names no resource).
    pub fn authorize(
        &self,
        action: &str,
        resources: &[&str],
        context: &[(&str, &str)],
    ) -> Result<(), Denial> {
        let all = ["*"];
        let resources = if resources.is_empty() {
            &all[..]
        } else {
            resources
        };
        for resource in resources {
            match self.evaluate(action, resource, context) {
                Decision::Allow => {}
                denied => {
                    return Err(Denial {
                        action: action.to_owned(),
                        resource: (*resource).to_owned(),
                        explicit: matches!(denied, Decision::ExplicitDeny(_)),
                    });
                }
            }
        }
        Ok(())
    }
}

fn check_statement(s: &Statement) -> Result<(), PolicyError> {
    match (&s.action, &s.not_action) {
        (Some(a), None) | (None, Some(a)) => check_values(a, "Action", check_action)?,
        _ => return Err(malformed("it needs exactly one of Action and NotAction")),
    }
    match (&s.resource, &s.not_resource) {
        (Some(r), None) | (None, Some(r)) => check_values(r, "Resource", check_resource)?,
        _ => {
            return Err(malformed(
                "it needs exactly one of Resource and NotResource",
            ));
        }
    }
    if let Some(sid) = &s.sid
        && (sid.len() > 128 || !sid.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        return Err(malformed("Sid must be up to 128 letters and digits"));
    }
    for (op, keys) in s.condition.iter().flatten() {
        let Some((operator, _)) = Operator::parse(op) else {
            return Err(malformed(format!(
                "condition operator '{}' is not supported; use StringEquals, StringNotEquals, \
                 StringEqualsIgnoreCase, StringNotEqualsIgnoreCase, StringLike, StringNotLike, \
                 ArnEquals, ArnLike, ArnNotEquals, ArnNotLike (each also ...IfExists) or Null",
                shorten(op)
            )));
        };
        if keys.is_empty() {
            return Err(malformed(format!("condition operator {op} names no key")));
        }
        for (key, values) in keys {
            if !CONDITION_KEYS.iter().any(|k| k.eq_ignore_ascii_case(key)) {
                return Err(malformed(format!(
                    "condition key '{}' is not supported; berth's requests carry {}",
                    shorten(key),
                    CONDITION_KEYS.join(", ")
                )));
            }
            check_values(values, "Condition value", |v| {
                if operator == Operator::Null && v != "true" && v != "false" {
                    return Err(malformed("a Null condition takes \"true\" or \"false\""));
                }
                Ok(())
            })?;
        }
    }
    Ok(())
}

fn check_values(
    values: &OneOrMany<String>,
    what: &str,
    each: impl Fn(&str) -> Result<(), PolicyError>,
) -> Result<(), PolicyError> {
    let values = values.as_slice();
    if values.is_empty() || values.len() > MAX_VALUES {
        return Err(malformed(format!("{what} takes 1 to {MAX_VALUES} values")));
    }
    for v in values {
        if v.is_empty() || v.len() > MAX_VALUE_LEN {
            return Err(malformed(format!(
                "{what} values are 1 to {MAX_VALUE_LEN} characters"
            )));
        }
        if v.contains("${") {
            return Err(malformed(format!(
                "{what} '{}': policy variables are not supported",
                shorten(v)
            )));
        }
        each(v)?;
    }
    Ok(())
}

fn check_action(action: &str) -> Result<(), PolicyError> {
    if action == "*" {
        return Ok(());
    }
    let valid = action.split_once(':').is_some_and(|(service, name)| {
        !service.is_empty()
            && service
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'*' || b == b'?')
    });
    if valid {
        Ok(())
    } else {
        Err(malformed(format!(
            "Action '{}' is not SERVICE:NAME (e.g. ecs:RunTask, ecs:Describe*)",
            shorten(action)
        )))
    }
}

fn check_resource(resource: &str) -> Result<(), PolicyError> {
    if resource == "*" || resource.starts_with("arn:") {
        Ok(())
    } else {
        Err(malformed(format!(
            "Resource '{}' must be \"*\" or an ARN",
            shorten(resource)
        )))
    }
}

impl Statement {
    /// Whether the statement's `Action` (or `NotAction`) covers `action`.
    fn names_action(&self, action: &str) -> bool {
        let action_matches = |patterns: &OneOrMany<String>| {
            patterns.as_slice().iter().any(|p| glob(p, action, true))
        };
        match (&self.action, &self.not_action) {
            (Some(a), _) => action_matches(a),
            (None, Some(n)) => !action_matches(n),
            (None, None) => false,
        }
    }

    fn applies(&self, action: &str, resource: &str, context: &[(&str, &str)]) -> bool {
        if !self.names_action(action) {
            return false;
        }
        let resource_matches = |patterns: &OneOrMany<String>| {
            patterns
                .as_slice()
                .iter()
                .any(|p| p == "*" || arn_like(p, resource))
        };
        let resource_ok = match (&self.resource, &self.not_resource) {
            (Some(r), _) => resource_matches(r),
            (None, Some(n)) => !resource_matches(n),
            (None, None) => false,
        };
        resource_ok && self.conditions_hold(context)
    }

    fn conditions_hold(&self, context: &[(&str, &str)]) -> bool {
        let Some(conditions) = &self.condition else {
            return true;
        };
        conditions.iter().all(|(op, keys)| {
            let Some((operator, if_exists)) = Operator::parse(op) else {
                return false;
            };
            keys.iter().all(|(key, patterns)| {
                let value = context
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(key))
                    .map(|(_, v)| *v);
                let patterns = patterns.as_slice();
                if operator == Operator::Null {
                    // "true": the key must be absent; "false": present.
                    return patterns.iter().any(|p| (p == "true") == value.is_none());
                }
                match value {
                    // IAM: a missing key fails a positive operator, satisfies a negated one,
                    // and satisfies either with ...IfExists.
                    None => if_exists || operator.negated(),
                    Some(v) => {
                        let any = patterns.iter().any(|p| operator.matches(p, v));
                        if operator.negated() { !any } else { any }
                    }
                }
            })
        })
    }
}

/// `*` (any run of characters) and `?` (one character) wildcard match. Linear in the
/// product of the lengths at worst, never exponential.
pub fn glob(pattern: &str, value: &str, ignore_case: bool) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    let eq = |a: char, b: char| {
        if ignore_case {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    let (mut pi, mut vi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && eq(p[pi], v[vi]))) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, vi));
            pi += 1;
        } else if let Some((sp, sv)) = star {
            pi = sp + 1;
            vi = sv + 1;
            star = Some((sp, sv + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// ARN match: the six colon-separated parts match one by one (the last part keeps any
/// further colons), each with wildcards.
pub fn arn_like(pattern: &str, arn: &str) -> bool {
    let p: Vec<&str> = pattern.splitn(6, ':').collect();
    let a: Vec<&str> = arn.splitn(6, ':').collect();
    p.len() == 6 && a.len() == 6 && p.iter().zip(&a).all(|(p, a)| glob(p, a, false))
}

fn shorten(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROD: &str = "arn:aws:ecs:us-east-1:000000000000:cluster/prod";
    const DEV: &str = "arn:aws:ecs:us-east-1:000000000000:cluster/dev";

    fn policy(json: &str) -> Policy {
        Policy::parse(json).unwrap_or_else(|e| panic!("{e}: {json}"))
    }

    #[test]
    fn wildcards() {
        assert!(glob("ecs:Describe*", "ecs:DescribeTasks", false));
        assert!(glob("ecs:describe*", "ecs:DescribeTasks", true));
        assert!(!glob("ecs:describe*", "ecs:DescribeTasks", false));
        assert!(glob("a?c", "abc", false));
        assert!(!glob("a?c", "ac", false));
        assert!(glob("*", "", false));
        assert!(glob("a*b*c", "aXXbYYc", false));
        assert!(!glob("a*b*c", "aXXbYY", false));
        assert!(arn_like("arn:aws:ecs:*:*:cluster/prod", PROD));
        assert!(!arn_like("arn:aws:ecs:*:*:cluster/prod", DEV));
        assert!(
            !arn_like("arn:aws:ecs:*", PROD),
            "a wildcard never spans parts"
        );
        assert!(arn_like("arn:aws:ecs:*:*:*", PROD));
    }

    #[test]
    fn explicit_deny_wins_and_default_is_deny() {
        let p = policy(
            r#"{"Version":"2012-10-17","Statement":[
                {"Effect":"Allow","Action":"ecs:*","Resource":"*"},
                {"Sid":"NoProd","Effect":"Deny","Action":"ecs:RunTask","Resource":"*",
                 "Condition":{"ArnLike":{"ecs:cluster":"arn:aws:ecs:*:*:cluster/prod"}}}]}"#,
        );
        let td = "arn:aws:ecs:us-east-1:000000000000:task-definition/web:1";
        assert_eq!(
            p.evaluate("ecs:RunTask", td, &[("ecs:cluster", DEV)]),
            Decision::Allow
        );
        assert_eq!(
            p.evaluate("ecs:RunTask", td, &[("ecs:cluster", PROD)]),
            Decision::ExplicitDeny(Some("NoProd".into()))
        );
        assert_eq!(
            p.evaluate("berth:CreateCredential", "*", &[]),
            Decision::ImplicitDeny
        );
        let denied = p
            .authorize("ecs:RunTask", &[td], &[("ecs:cluster", PROD)])
            .unwrap_err();
        assert!(denied.explicit);
        assert!(
            denied
                .message("arn:aws:iam::000000000000:user/ops")
                .contains("explicit deny")
        );
    }

    #[test]
    fn only_an_unconditional_allow_on_everything_that_nothing_denies_skips_resources() {
        let p = policy(
            r#"{"Version":"2012-10-17","Statement":[
                {"Effect":"Allow","Action":"ecs:*","Resource":"*"},
                {"Effect":"Allow","Action":"berth:GetHistory","Resource":"*",
                 "Condition":{"ArnLike":{"ecs:cluster":"arn:aws:ecs:*:*:cluster/dev"}}},
                {"Effect":"Allow","Action":"berth:Watch","Resource":"arn:aws:ecs:*:*:cluster/dev"},
                {"Effect":"Allow","NotAction":"ecs:*","Resource":["arn:x","*"]},
                {"Effect":"Deny","Action":"ecs:RunTask","Resource":"arn:aws:ecs:*:*:cluster/prod"}]}"#,
        );
        assert!(p.allows_everywhere("ecs:DescribeTasks"));
        assert!(
            p.allows_everywhere("ECS:describetasks"),
            "actions ignore case"
        );
        assert!(!p.allows_everywhere("ecs:RunTask"), "a deny names it");
        assert!(
            p.allows_everywhere("berth:GetHistory"),
            "NotAction ecs:* allows it"
        );
        assert!(p.allows_everywhere("mesos:Subscribe"));
        let conditional = policy(
            r#"{"Statement":[{"Effect":"Allow","Action":"berth:GetHistory","Resource":"*",
                "Condition":{"ArnLike":{"ecs:cluster":"arn:aws:ecs:*:*:cluster/dev"}}},
                {"Effect":"Allow","Action":"berth:Watch","Resource":"arn:aws:ecs:*:*:cluster/dev"}]}"#,
        );
        assert!(!conditional.allows_everywhere("berth:GetHistory"));
        assert!(!conditional.allows_everywhere("berth:Watch"));
        assert!(!conditional.allows_everywhere("ecs:RunTask"));
        assert!(crate::Role::Admin.policy().allows_everywhere("ecs:RunTask"));
        assert!(
            !crate::Role::ReadOnly
                .policy()
                .allows_everywhere("ecs:RunTask")
        );
    }

    #[test]
    fn every_resource_must_be_allowed() {
        let p = policy(
            r#"{"Statement":{"Effect":"Allow","Action":"ecs:DescribeTasks",
                "Resource":"arn:aws:ecs:*:*:task/dev/*"}}"#,
        );
        let dev = "arn:aws:ecs:us-east-1:0:task/dev/abc";
        let prod = "arn:aws:ecs:us-east-1:0:task/prod/abc";
        assert!(p.authorize("ecs:DescribeTasks", &[dev], &[]).is_ok());
        let d = p
            .authorize("ecs:DescribeTasks", &[dev, prod], &[])
            .unwrap_err();
        assert_eq!(d.resource, prod);
        assert!(!d.explicit);
    }

    #[test]
    fn conditions_follow_iam_on_missing_keys() {
        let positive = policy(
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*",
                "Condition":{"ArnLike":{"ecs:cluster":"arn:aws:ecs:*:*:cluster/dev"}}}}"#,
        );
        assert_eq!(
            positive.evaluate("ecs:RegisterTaskDefinition", "*", &[]),
            Decision::ImplicitDeny,
            "a missing key fails a positive operator"
        );
        let if_exists = policy(
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*",
                "Condition":{"ArnLikeIfExists":{"ecs:cluster":"arn:aws:ecs:*:*:cluster/dev"}}}}"#,
        );
        assert_eq!(
            if_exists.evaluate("ecs:RegisterTaskDefinition", "*", &[]),
            Decision::Allow
        );
        assert_eq!(
            if_exists.evaluate("ecs:RunTask", "*", &[("ecs:cluster", PROD)]),
            Decision::ImplicitDeny
        );
        let negated = policy(
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*",
                "Condition":{"StringNotEquals":{"aws:username":["mallory","eve"]}}}}"#,
        );
        assert_eq!(negated.evaluate("ecs:ListTasks", "*", &[]), Decision::Allow);
        assert_eq!(
            negated.evaluate("ecs:ListTasks", "*", &[("aws:username", "eve")]),
            Decision::ImplicitDeny
        );
        assert_eq!(
            negated.evaluate("ecs:ListTasks", "*", &[("aws:username", "bob")]),
            Decision::Allow
        );
        let null = policy(
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*",
                "Condition":{"Null":{"ecs:cluster":"true"}}}}"#,
        );
        assert_eq!(null.evaluate("ecs:ListClusters", "*", &[]), Decision::Allow);
        assert_eq!(
            null.evaluate("ecs:ListTasks", "*", &[("ecs:cluster", DEV)]),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn not_action_and_not_resource() {
        let p = policy(
            r#"{"Statement":[{"Effect":"Allow","NotAction":"ecs:Delete*","NotResource":"arn:aws:ecs:*:*:cluster/prod"}]}"#,
        );
        assert_eq!(p.evaluate("ecs:RunTask", DEV, &[]), Decision::Allow);
        assert_eq!(
            p.evaluate("ecs:DeleteCluster", DEV, &[]),
            Decision::ImplicitDeny
        );
        assert_eq!(p.evaluate("ecs:RunTask", PROD, &[]), Decision::ImplicitDeny);
    }

    #[test]
    fn malformed_policies_are_refused_with_the_reason() {
        for (doc, says) in [
            ("{}", "missing field"),
            (r#"{"Statement":[]}"#, "1 to 100 statements"),
            (
                r#"{"Statement":{"Effect":"Allow","Resource":"*"}}"#,
                "exactly one of Action",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","NotResource":"*"}}"#,
                "exactly one of Resource",
            ),
            (
                r#"{"Statement":{"Effect":"Maybe","Action":"*","Resource":"*"}}"#,
                "unknown variant",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"RunTask","Resource":"*"}}"#,
                "SERVICE:NAME",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"cluster/x"}}"#,
                "an ARN",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"NumericEquals":{"ecs:cluster":"1"}}}}"#,
                "not supported",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:SourceIp":"1"}}}}"#,
                "condition key",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"arn:aws:ecs:*:*:cluster/${aws:username}"}}"#,
                "policy variables",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}}"#,
                "unknown field",
            ),
            (
                r#"{"Version":"2020-01-01","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
                "Version",
            ),
        ] {
            let err = Policy::parse(doc).expect_err(doc);
            assert!(err.0.contains(says), "{doc}: {err}");
        }
        let huge = format!(
            r#"{{"Statement":{{"Effect":"Allow","Action":"*","Resource":"{}"}}}}"#,
            "a".repeat(MAX_POLICY_BYTES)
        );
        assert!(Policy::parse(&huge).is_err());
    }

    #[test]
    fn a_policy_serializes_back_to_what_was_parsed() {
        let doc = r#"{"Version":"2012-10-17","Statement":[{"Sid":"A","Effect":"Allow","Action":["ecs:List*","ecs:Describe*"],"Resource":"*"}]}"#;
        let p = policy(doc);
        assert_eq!(serde_json::to_string(&p).expect("json"), doc);
    }
}
