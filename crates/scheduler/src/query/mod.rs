//! The ECS cluster query language: placement `memberOf` expressions and
//! `ListContainerInstances --filter`.
//!
//! ```text
//!  expression := or
//!  or         := and (("||" | "or") and)*
//!  and        := unary (("&&" | "and") unary)*
//!  unary      := ("!" | "not") unary | "(" expression ")" | condition
//!  condition  := subject operator [argument]
//!  subject    := agentConnected | agentVersion | attribute:<name> | ec2InstanceId
//!              | registeredAt | runningTasksCount | task:group
//!  operator   := == equals | != not_equals | > greater_than | >= greater_than_equal
//!              | < less_than | <= less_than_equal | exists | !exists not_exists
//!              | in | !in not_in | =~ matches | !~ not_matches
//!  argument   := value | "[" value ("," value)* "]"      value := bare word | 'quoted' | "quoted"
//! ```
//! Parsing checks each argument against its subject (a date for `registeredAt`, a number for
//! `runningTasksCount`, a version for `agentVersion`, a valid regex for `=~`), so a mistake is
//! reported once, at its position, rather than silently matching nothing. Regexes are compiled
//! once, when the expression is parsed, within a budget for the whole expression (see
//! [`MAX_REGEX_BYTES`]), and [`parse_shared`] keeps stored expressions compiled across
//! placements and reconciles. Evaluation is against a [`Target`] — an instance as the
//! scheduler sees it, including tasks planned but not yet committed.
//!
//! Semantics worth knowing: `!=`, `not_in`, `!~` are the negations of `==`, `in`, `=~` (so an
//! instance without the attribute satisfies `attribute:x != y`); `task:group` is the set of the
//! groups of the instance's live tasks, and `task:group == g` holds when any task is in `g`;
//! a regex must match the whole value; a value that is a number on both sides compares
//! numerically, otherwise text compares as text; a date without a time means midnight UTC.

mod cache;
mod parser;

use berth_model::Millis;
use regex_automata::meta::Regex;

pub use cache::parse_shared;
pub use parser::{MAX_LENGTH, MAX_REGEX_BYTES, ParseError, parse};

/// What a condition is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    AgentConnected,
    AgentVersion,
    Attribute(String),
    Ec2InstanceId,
    RegisteredAt,
    RunningTasksCount,
    TaskGroup,
}

/// How a subject is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Exists,
    NotExists,
    In,
    NotIn,
    Matches,
    NotMatches,
}

/// An argument, already in the form its subject compares with.
#[derive(Debug, Clone)]
pub enum Value {
    Text(String),
    Bool(bool),
    Count(u64),
    Version(Vec<u64>),
    Date(Millis),
}

/// The right-hand side of a condition.
#[derive(Debug, Clone)]
pub enum Argument {
    None,
    One(Value),
    List(Vec<Value>),
    /// The pattern as written, and compiled to match whole values.
    Pattern(String, Regex),
}

/// `subject operator argument`.
#[derive(Debug, Clone)]
pub struct Condition {
    pub subject: Subject,
    pub operator: Operator,
    pub argument: Argument,
}

/// A parsed expression.
#[derive(Debug, Clone)]
pub enum Expr {
    Condition(Condition),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

/// What an expression is evaluated against: one container instance.
pub trait Target {
    fn agent_connected(&self) -> bool;
    fn agent_version(&self) -> Option<&str>;
    /// `None` when the attribute is absent, `Some(None)` when present without a value.
    fn attribute(&self, name: &str) -> Option<Option<&str>>;
    fn ec2_instance_id(&self) -> Option<&str>;
    fn registered_at(&self) -> Millis;
    fn running_tasks_count(&self) -> u64;
    /// True when any live task on the instance has a group for which `test` is true.
    fn any_task_group(&self, test: &mut dyn FnMut(&str) -> bool) -> bool;
}

impl Expr {
    /// Whether `target` satisfies the expression.
    pub fn eval(&self, target: &dyn Target) -> bool {
        match self {
            Expr::Condition(c) => c.eval(target),
            Expr::Not(e) => !e.eval(target),
            Expr::And(a, b) => a.eval(target) && b.eval(target),
            Expr::Or(a, b) => a.eval(target) || b.eval(target),
        }
    }

    /// Heap bytes its compiled regexes take (at most [`MAX_REGEX_BYTES`]).
    pub fn regex_bytes(&self) -> usize {
        match self {
            Expr::Condition(c) => match &c.argument {
                Argument::Pattern(_, re) => re.memory_usage(),
                _ => 0,
            },
            Expr::Not(e) => e.regex_bytes(),
            Expr::And(a, b) | Expr::Or(a, b) => a.regex_bytes() + b.regex_bytes(),
        }
    }
}

/// Parses "1.14.5" or "v1.14.5" into numeric components.
pub(crate) fn parse_version(s: &str) -> Option<Vec<u64>> {
    let s = s.strip_prefix('v').unwrap_or(s);
    if s.is_empty() {
        return None;
    }
    s.split('.').map(|p| p.parse().ok()).collect()
}

fn compare_text(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) if x.is_finite() && y.is_finite() => {
            x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal)
        }
        _ => a.cmp(b),
    }
}

/// Compares an instance's value with an argument value of the same subject.
fn order(subject_value: &Value, arg: &Value) -> Option<std::cmp::Ordering> {
    match (subject_value, arg) {
        (Value::Text(a), Value::Text(b)) => Some(compare_text(a, b)),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        (Value::Count(a), Value::Count(b)) => Some(a.cmp(b)),
        (Value::Version(a), Value::Version(b)) => {
            let n = a.len().max(b.len());
            let pad = |v: &Vec<u64>, i| v.get(i).copied().unwrap_or(0);
            Some(
                (0..n)
                    .map(|i| pad(a, i).cmp(&pad(b, i)))
                    .find(|o| o.is_ne())
                    .unwrap_or(std::cmp::Ordering::Equal),
            )
        }
        (Value::Date(a), Value::Date(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Text(x), Value::Text(y)) => x == y,
        _ => order(a, b) == Some(std::cmp::Ordering::Equal),
    }
}

fn text_of(v: &Value) -> Option<&str> {
    match v {
        Value::Text(t) => Some(t),
        _ => None,
    }
}

impl Condition {
    /// The positive test of this condition against one value.
    fn holds_for(&self, value: &Value) -> bool {
        use std::cmp::Ordering::*;
        match (&self.operator, &self.argument) {
            (Operator::Eq | Operator::Ne, Argument::One(a)) => equal(value, a),
            (Operator::In | Operator::NotIn, Argument::List(list)) => {
                list.iter().any(|a| equal(value, a))
            }
            (Operator::Matches | Operator::NotMatches, Argument::Pattern(_, re)) => {
                text_of(value).is_some_and(|t| re.is_match(t))
            }
            (Operator::Gt, Argument::One(a)) => order(value, a) == Some(Greater),
            (Operator::Ge, Argument::One(a)) => matches!(order(value, a), Some(Greater | Equal)),
            (Operator::Lt, Argument::One(a)) => order(value, a) == Some(Less),
            (Operator::Le, Argument::One(a)) => matches!(order(value, a), Some(Less | Equal)),
            _ => false,
        }
    }

    fn negated(&self) -> bool {
        matches!(
            self.operator,
            Operator::Ne | Operator::NotIn | Operator::NotMatches | Operator::NotExists
        )
    }

    fn eval(&self, t: &dyn Target) -> bool {
        let positive = match &self.subject {
            Subject::TaskGroup => match self.operator {
                Operator::Exists | Operator::NotExists => t.any_task_group(&mut |_| true),
                _ => t.any_task_group(&mut |g| self.holds_for(&Value::Text(g.to_owned()))),
            },
            subject => {
                let value = match subject {
                    Subject::AgentConnected => Some(Some(Value::Bool(t.agent_connected()))),
                    Subject::AgentVersion => Some(
                        t.agent_version()
                            .and_then(parse_version)
                            .map(Value::Version),
                    ),
                    Subject::Attribute(name) => t
                        .attribute(name)
                        .map(|v| v.map(|s| Value::Text(s.to_owned()))),
                    Subject::Ec2InstanceId => {
                        t.ec2_instance_id().map(|s| Some(Value::Text(s.to_owned())))
                    }
                    Subject::RegisteredAt => Some(Some(Value::Date(t.registered_at()))),
                    Subject::RunningTasksCount => Some(Some(Value::Count(t.running_tasks_count()))),
                    Subject::TaskGroup => unreachable!("handled above"),
                };
                match self.operator {
                    Operator::Exists | Operator::NotExists => value.is_some(),
                    _ => value.flatten().is_some_and(|v| self.holds_for(&v)),
                }
            }
        };
        positive != self.negated()
    }
}

#[cfg(test)]
mod tests;

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Text(t) => write!(f, "{}", quoted(t)),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Count(n) => write!(f, "{n}"),
            Value::Version(v) => {
                let parts: Vec<String> = v.iter().map(u64::to_string).collect();
                f.write_str(&parts.join("."))
            }
            Value::Date(m) => write!(f, "{}", format_date(*m)),
        }
    }
}

/// Text in the quotes it does not contain.
fn quoted(t: &str) -> String {
    if t.contains('\'') {
        format!("\"{t}\"")
    } else {
        format!("'{t}'")
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (Howard Hinnant's `civil_from_days`).
fn format_date(m: Millis) -> String {
    let ms = m.0.rem_euclid(86_400_000);
    let z = m.0.div_euclid(86_400_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::AgentConnected => f.write_str("agentConnected"),
            Subject::AgentVersion => f.write_str("agentVersion"),
            Subject::Attribute(n) => write!(f, "attribute:{n}"),
            Subject::Ec2InstanceId => f.write_str("ec2InstanceId"),
            Subject::RegisteredAt => f.write_str("registeredAt"),
            Subject::RunningTasksCount => f.write_str("runningTasksCount"),
            Subject::TaskGroup => f.write_str("task:group"),
        }
    }
}

impl std::fmt::Display for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Operator::Eq => "==",
            Operator::Ne => "!=",
            Operator::Gt => ">",
            Operator::Ge => ">=",
            Operator::Lt => "<",
            Operator::Le => "<=",
            Operator::Exists => "exists",
            Operator::NotExists => "!exists",
            Operator::In => "in",
            Operator::NotIn => "!in",
            Operator::Matches => "=~",
            Operator::NotMatches => "!~",
        })
    }
}

/// The canonical text of an expression: fully parenthesized, values quoted. Parsing it gives
/// back an equivalent expression.
impl std::fmt::Display for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expr::Condition(c) => {
                write!(f, "{} {}", c.subject, c.operator)?;
                match &c.argument {
                    Argument::None => Ok(()),
                    Argument::One(v) => write!(f, " {v}"),
                    Argument::List(l) => {
                        let items: Vec<String> = l.iter().map(Value::to_string).collect();
                        write!(f, " [{}]", items.join(", "))
                    }
                    Argument::Pattern(text, _) => write!(f, " {}", quoted(text)),
                }
            }
            Expr::Not(e) => write!(f, "not ({e})"),
            Expr::And(a, b) => write!(f, "({a}) and ({b})"),
            Expr::Or(a, b) => write!(f, "({a}) or ({b})"),
        }
    }
}
