//! A recursive-descent parser for the cluster query language, working directly on the text so
//! that arguments can be read in the form their operator needs (a regex may contain brackets
//! and parentheses; a date contains colons and a plus sign). Every error names the position
//! (1-based column) and what was expected there.
//!
//! Length alone does not bound what an expression costs: its regular expressions are compiled
//! to automata, and a short pattern can compile to megabytes (`\w` is a Unicode class of some
//! 56 KiB of automaton, so `\w{200}` is 11 MiB and a tenth of a CPU second; 76 of them fit in
//! one 2,000-character expression). So the regexes of one expression share a budget of
//! [`MAX_REGEX_BYTES`] of compiled form: each is compiled with the automaton size limit set to
//! what is left, which stops an oversized one early, and one that does not fit is refused at
//! its column. Patterns people write (`t2.*`, `us-east-1[ab]`, `i-[0-9a-f]+`) take a few KiB.

use std::fmt;

use berth_model::Millis;
use regex_automata::meta::Regex;

use super::{Argument, Condition, Expr, Operator, Subject, Value, parse_version};

/// Longest expression ECS accepts.
pub const MAX_LENGTH: usize = 2000;

/// Most bytes the compiled regular expressions of one expression may take together. It bounds
/// the memory an expression holds and the CPU compiling it costs (about 10 ms per MiB, in a
/// release build).
pub const MAX_REGEX_BYTES: usize = 1 << 20;

/// Deepest nesting of parentheses and negations accepted.
const MAX_DEPTH: usize = 64;

/// Why an expression did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based column (in characters) where the problem is.
    pub column: usize,
    /// What the parser expected there.
    pub expected: String,
    /// What it found instead.
    pub found: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid expression at column {}: expected {}, found {}",
            self.column, self.expected, self.found
        )
    }
}

impl std::error::Error for ParseError {}

/// Parses an expression.
pub fn parse(text: &str) -> Result<Expr, ParseError> {
    if text.chars().count() > MAX_LENGTH {
        return Err(ParseError {
            column: MAX_LENGTH + 1,
            expected: format!("an expression of at most {MAX_LENGTH} characters"),
            found: format!("{} characters", text.chars().count()),
        });
    }
    let mut p = Parser {
        src: text,
        pos: 0,
        regex_bytes_left: MAX_REGEX_BYTES,
    };
    p.skip_ws();
    if p.at_end() {
        return Err(p.error("a condition such as 'attribute:ecs.instance-type == t2.small'"));
    }
    let expr = p.or(0)?;
    p.skip_ws();
    if !p.at_end() {
        return Err(p.error("'and', 'or' or the end of the expression"));
    }
    Ok(expr)
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    /// What is left of [`MAX_REGEX_BYTES`] for the regexes not compiled yet.
    regex_bytes_left: usize,
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Characters that end a bare word: space, punctuation of the grammar, operator symbols.
fn ends_bare(c: char) -> bool {
    c.is_whitespace() || "()[],'\"=!<>~&|".contains(c)
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    fn column(&self) -> usize {
        self.src[..self.pos].chars().count() + 1
    }

    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.src.len() - trimmed.len();
    }

    fn found(&self) -> String {
        if self.at_end() {
            return "the end of the expression".into();
        }
        let word: String = self
            .rest()
            .chars()
            .take_while(|c| !c.is_whitespace())
            .take(40)
            .collect();
        format!("'{word}'")
    }

    fn error(&self, expected: &str) -> ParseError {
        ParseError {
            column: self.column(),
            expected: expected.to_owned(),
            found: self.found(),
        }
    }

    /// Consumes `symbol` (after spaces) if it comes next.
    fn symbol(&mut self, symbol: &str) -> bool {
        self.skip_ws();
        if self.rest().starts_with(symbol) {
            self.pos += symbol.len();
            true
        } else {
            false
        }
    }

    /// Consumes keyword `word` (case-insensitive, whole word) if it comes next.
    fn keyword(&mut self, word: &str) -> bool {
        self.skip_ws();
        let rest = self.rest();
        let Some(head) = rest.get(..word.len()) else {
            return false;
        };
        let boundary = rest[word.len()..]
            .chars()
            .next()
            .is_none_or(|c| !is_word_char(c));
        if head.eq_ignore_ascii_case(word) && boundary {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    fn or(&mut self, depth: usize) -> Result<Expr, ParseError> {
        let mut left = self.and(depth)?;
        while self.symbol("||") || self.keyword("or") {
            let right = self.and(depth)?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Expr, ParseError> {
        let mut left = self.unary(depth)?;
        while self.symbol("&&") || self.keyword("and") {
            let right = self.unary(depth)?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.error(&format!("at most {MAX_DEPTH} levels of nesting")));
        }
        self.skip_ws();
        let negation = if self.rest().starts_with('!') && !self.rest().starts_with("!=") {
            self.pos += 1;
            true
        } else {
            self.keyword("not")
        };
        if negation {
            return Ok(Expr::Not(Box::new(self.unary(depth + 1)?)));
        }
        if self.symbol("(") {
            let inner = self.or(depth + 1)?;
            if !self.symbol(")") {
                return Err(self.error("')' to close the parenthesis"));
            }
            return Ok(inner);
        }
        self.condition().map(Expr::Condition)
    }

    /// A run of bare-word characters (possibly empty).
    fn bare(&mut self) -> &'a str {
        self.skip_ws();
        let rest = self.rest();
        let len = rest.find(ends_bare).unwrap_or(rest.len());
        self.pos += len;
        &rest[..len]
    }

    fn subject(&mut self) -> Result<Subject, ParseError> {
        let start = self.pos;
        let word = self.bare();
        let subject = if let Some(name) = strip_prefix_ci(word, "attribute:") {
            let valid = !name.is_empty()
                && name.len() <= 128
                && name.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'/' | b'\\' | b'.')
                });
            if !valid {
                self.pos = start;
                return Err(self.error("an attribute name of 1 to 128 letters, digits, '-', '_', '/', '\\' or '.' after 'attribute:'"));
            }
            Subject::Attribute(name.to_owned())
        } else {
            match word.to_ascii_lowercase().as_str() {
                "agentconnected" => Subject::AgentConnected,
                "agentversion" => Subject::AgentVersion,
                "ec2instanceid" => Subject::Ec2InstanceId,
                "registeredat" => Subject::RegisteredAt,
                "runningtaskscount" => Subject::RunningTasksCount,
                "task:group" => Subject::TaskGroup,
                _ => {
                    self.pos = start;
                    return Err(self.error(
                        "a subject (agentConnected, agentVersion, attribute:<name>, ec2InstanceId, registeredAt, runningTasksCount or task:group), 'not' or '('",
                    ));
                }
            }
        };
        Ok(subject)
    }

    fn operator(&mut self) -> Result<Operator, ParseError> {
        const SYMBOLS: &[(&str, Operator)] = &[
            ("==", Operator::Eq),
            ("!=", Operator::Ne),
            (">=", Operator::Ge),
            ("<=", Operator::Le),
            (">", Operator::Gt),
            ("<", Operator::Lt),
            ("=~", Operator::Matches),
            ("!~", Operator::NotMatches),
        ];
        const WORDS: &[(&str, Operator)] = &[
            ("equals", Operator::Eq),
            ("not_equals", Operator::Ne),
            ("greater_than_equal", Operator::Ge),
            ("greater_than", Operator::Gt),
            ("less_than_equal", Operator::Le),
            ("less_than", Operator::Lt),
            ("exists", Operator::Exists),
            ("not_exists", Operator::NotExists),
            ("in", Operator::In),
            ("not_in", Operator::NotIn),
            ("matches", Operator::Matches),
            ("not_matches", Operator::NotMatches),
        ];
        // `!exists` and `!in` before the plain symbols, `!=` and `!~` among them.
        if self.symbol("!") {
            if self.keyword("exists") {
                return Ok(Operator::NotExists);
            }
            if self.keyword("in") {
                return Ok(Operator::NotIn);
            }
            self.pos -= 1;
        }
        for (s, op) in SYMBOLS {
            if self.symbol(s) {
                return Ok(*op);
            }
        }
        for (w, op) in WORDS {
            if self.keyword(w) {
                return Ok(*op);
            }
        }
        Err(self.error(
            "an operator (==, !=, >, >=, <, <=, exists, !exists, in, !in, =~, !~ or their word forms)",
        ))
    }

    /// A quoted string or a bare word.
    fn value_text(&mut self, what: &str) -> Result<(usize, String), ParseError> {
        self.skip_ws();
        let start = self.pos;
        let column = self.column();
        let rest = self.rest();
        if let Some(q) = rest.chars().next().filter(|c| *c == '\'' || *c == '"') {
            let body = &rest[1..];
            let Some(end) = body.find(q) else {
                return Err(self.error(&format!("a closing {q} for the quoted value")));
            };
            self.pos += 1 + end + 1;
            return Ok((column, body[..end].to_owned()));
        }
        let word = self.bare();
        if word.is_empty() {
            self.pos = start;
            return Err(self.error(what));
        }
        Ok((column, word.to_owned()))
    }

    /// A regex argument: quoted, or bare text in which brackets and parentheses may nest.
    fn pattern(&mut self) -> Result<(String, Regex), ParseError> {
        self.skip_ws();
        let column = self.column();
        let text = if self.rest().starts_with(['\'', '"']) {
            self.value_text("a regular expression")?.1
        } else {
            let rest = self.rest();
            let mut depth = 0i32;
            let mut end = rest.len();
            for (i, c) in rest.char_indices() {
                match c {
                    '(' | '[' | '{' => depth += 1,
                    ')' | ']' | '}' if depth > 0 => depth -= 1,
                    ')' => {
                        end = i;
                        break;
                    }
                    c if c.is_whitespace() && depth == 0 => {
                        end = i;
                        break;
                    }
                    _ => {}
                }
            }
            if end == 0 {
                return Err(self.error("a regular expression"));
            }
            self.pos += end;
            rest[..end].to_owned()
        };
        let left = self.regex_bytes_left;
        let too_big = |text: &str| ParseError {
            column,
            expected: format!(
                "regular expressions that compile to at most {} KiB together (Unicode classes are large: \\w{{20}} alone is over; ASCII ones such as (?-u:\\w) or [a-z0-9_] are small)",
                MAX_REGEX_BYTES / 1024
            ),
            found: format!("'{text}', which needs more than the {left} bytes left"),
        };
        let built = Regex::builder()
            .configure(Regex::config().nfa_size_limit(Some(left)))
            .build(&format!("^(?:{text})$"));
        match built {
            Ok(re) if re.memory_usage() <= left => {
                self.regex_bytes_left -= re.memory_usage();
                Ok((text, re))
            }
            Ok(_) => Err(too_big(&text)),
            Err(e) if e.size_limit().is_some() => Err(too_big(&text)),
            Err(e) => {
                let why = e
                    .syntax_error()
                    .map_or_else(|| e.to_string(), |s| s.to_string());
                Err(ParseError {
                    column,
                    expected: "a valid regular expression".into(),
                    found: format!("'{text}' ({})", why.lines().last().unwrap_or("invalid")),
                })
            }
        }
    }

    /// Turns argument text into the value type its subject compares with.
    fn typed(&self, subject: &Subject, column: usize, text: String) -> Result<Value, ParseError> {
        let bad = |expected: &str| ParseError {
            column,
            expected: expected.to_owned(),
            found: format!("'{text}'"),
        };
        Ok(match subject {
            Subject::AgentConnected => match text.to_ascii_lowercase().as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => return Err(bad("true or false")),
            },
            Subject::AgentVersion => {
                Value::Version(parse_version(&text).ok_or_else(|| bad("a version such as 1.14.5"))?)
            }
            Subject::RunningTasksCount => {
                Value::Count(text.parse().map_err(|_| bad("a whole number"))?)
            }
            Subject::RegisteredAt => Value::Date(parse_date(&text).ok_or_else(|| {
                bad("a date such as 2018-06-18, 2018-06-18T22:28:28Z or 2018-06-18T22:28:28+00:00")
            })?),
            Subject::Attribute(_) | Subject::Ec2InstanceId | Subject::TaskGroup => {
                Value::Text(text)
            }
        })
    }

    fn condition(&mut self) -> Result<Condition, ParseError> {
        let subject = self.subject()?;
        let op_column = {
            self.skip_ws();
            self.column()
        };
        let operator = self.operator()?;
        let allowed = match subject {
            Subject::AgentConnected => matches!(operator, Operator::Eq | Operator::Ne),
            Subject::RegisteredAt | Subject::AgentVersion | Subject::RunningTasksCount => {
                !matches!(
                    operator,
                    Operator::Matches
                        | Operator::NotMatches
                        | Operator::Exists
                        | Operator::NotExists
                )
            }
            Subject::Ec2InstanceId | Subject::TaskGroup => !matches!(
                operator,
                Operator::Gt | Operator::Ge | Operator::Lt | Operator::Le
            ),
            Subject::Attribute(_) => true,
        };
        if !allowed {
            return Err(ParseError {
                column: op_column,
                expected: format!("an operator that applies to {}", subject_name(&subject)),
                found: format!("{operator:?}"),
            });
        }
        let argument = match operator {
            Operator::Exists | Operator::NotExists => Argument::None,
            Operator::Matches | Operator::NotMatches => {
                let (text, re) = self.pattern()?;
                Argument::Pattern(text, re)
            }
            Operator::In | Operator::NotIn => {
                if !self.symbol("[") {
                    return Err(self.error("'[' to start a list such as [a, b]"));
                }
                let mut list = Vec::new();
                loop {
                    let (column, text) = self.value_text("a list item")?;
                    list.push(self.typed(&subject, column, text)?);
                    if self.symbol(",") {
                        continue;
                    }
                    if self.symbol("]") {
                        break;
                    }
                    return Err(self.error("',' or ']' in the list"));
                }
                Argument::List(list)
            }
            _ => {
                let (column, text) = self.value_text("a value to compare with")?;
                Argument::One(self.typed(&subject, column, text)?)
            }
        };
        Ok(Condition {
            subject,
            operator,
            argument,
        })
    }
}

fn subject_name(s: &Subject) -> String {
    match s {
        Subject::AgentConnected => "agentConnected".into(),
        Subject::AgentVersion => "agentVersion".into(),
        Subject::Attribute(n) => format!("attribute:{n}"),
        Subject::Ec2InstanceId => "ec2InstanceId".into(),
        Subject::RegisteredAt => "registeredAt".into(),
        Subject::RunningTasksCount => "runningTasksCount".into(),
        Subject::TaskGroup => "task:group".into(),
    }
}

fn strip_prefix_ci<'s>(s: &'s str, prefix: &str) -> Option<&'s str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn number(s: &str, len: usize) -> Option<i64> {
    (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// `YYYY-MM-DD[THH:MM:SS[.fff][Z|±HH:MM]]` as UTC milliseconds.
pub(crate) fn parse_date(s: &str) -> Option<Millis> {
    let (date, time) = match s.split_once(['T', 't']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut parts = date.split('-');
    let y = number(parts.next()?, 4)?;
    let m = number(parts.next()?, 2)?;
    let d = number(parts.next()?, 2)?;
    if parts.next().is_some() || !(1..=12).contains(&m) {
        return None;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in_month = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if d < 1 || d > days_in_month[(m - 1) as usize] {
        return None;
    }
    let mut millis = days_from_civil(y, m, d) * 86_400_000;
    if let Some(t) = time {
        let (clock, offset_ms) = if let Some(c) = t.strip_suffix(['Z', 'z']) {
            (c, 0)
        } else if let Some(i) = t.rfind(['+', '-']) {
            let (c, off) = t.split_at(i);
            let sign = if off.starts_with('-') { -1 } else { 1 };
            let (oh, om) = off[1..].split_once(':')?;
            let (oh, om) = (number(oh, 2)?, number(om, 2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            (c, sign * (oh * 3_600_000 + om * 60_000))
        } else {
            (t, 0)
        };
        let (hms, fraction) = match clock.split_once('.') {
            Some((hms, f))
                if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) =>
            {
                (hms, format!("{f:0<3}")[..3].parse::<i64>().ok()?)
            }
            Some(_) => return None,
            None => (clock, 0),
        };
        let mut hms = hms.split(':');
        let h = number(hms.next()?, 2)?;
        let mi = number(hms.next()?, 2)?;
        let sec = number(hms.next()?, 2)?;
        if hms.next().is_some() || h > 23 || mi > 59 || sec > 60 {
            return None;
        }
        millis += h * 3_600_000 + mi * 60_000 + sec * 1000 + fraction - offset_ms;
    }
    Some(Millis(millis))
}
