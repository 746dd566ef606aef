//! Expressions compiled once and shared, by their text.
//!
//! A stored placement constraint (a task definition's or a service's) is read again on every
//! RunTask of the definition and on every reconcile of the service, and compiling its regexes
//! is the expensive part of reading it. So [`parse_shared`] keeps what [`parse`] made of each
//! text it was given, refusals included (a stored expression that no longer parses is not
//! parsed again either), and hands out the same `Arc` for the same text.
//!
//! This is the scheduler's only mutable state, and it cannot change a decision: an entry is
//! exactly what `parse` returns for its key, so the same snapshot, request and seed give the
//! same plan with or without it. It is bounded in entries and in the compiled bytes it keeps,
//! and evicts the least recently used.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use super::{Expr, ParseError, parse};

/// Most expressions kept.
const MAX_ENTRIES: usize = 4096;
/// Most bytes kept (expression text and compiled regexes): at least 64 expressions that use
/// their whole regex budget, thousands of ordinary ones.
const MAX_BYTES: usize = 64 << 20;

/// What parsing one text gave.
type Parsed = Result<Arc<Expr>, ParseError>;

static SHARED: LazyLock<Mutex<Cache>> =
    LazyLock::new(|| Mutex::new(Cache::new(MAX_ENTRIES, MAX_BYTES)));

fn shared() -> MutexGuard<'static, Cache> {
    SHARED.lock().unwrap_or_else(|e| e.into_inner())
}

/// [`parse`], remembered: the expression (or the refusal) parsed from the same text before, if
/// it is still kept.
pub fn parse_shared(text: &str) -> Result<Arc<Expr>, ParseError> {
    if let Some(hit) = shared().get(text) {
        return hit;
    }
    // Compiled without the lock held, so one slow expression does not hold up the others.
    let parsed = parse(text).map(Arc::new);
    shared().insert(text, parsed.clone());
    parsed
}

struct Entry {
    parsed: Parsed,
    bytes: usize,
    /// The tick of its last use: its key in `Cache::by_use`.
    used: u64,
}

/// A least-recently-used map from expression text to what it parsed to.
struct Cache {
    max_entries: usize,
    max_bytes: usize,
    bytes: usize,
    tick: u64,
    entries: HashMap<Arc<str>, Entry>,
    /// Keys by last use, oldest first.
    by_use: BTreeMap<u64, Arc<str>>,
}

impl Cache {
    fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            max_entries,
            max_bytes,
            bytes: 0,
            tick: 0,
            entries: HashMap::new(),
            by_use: BTreeMap::new(),
        }
    }

    fn get(&mut self, text: &str) -> Option<Parsed> {
        let entry = self.entries.get_mut(text)?;
        let key = self.by_use.remove(&entry.used)?;
        self.tick += 1;
        entry.used = self.tick;
        self.by_use.insert(self.tick, key);
        Some(entry.parsed.clone())
    }

    fn insert(&mut self, text: &str, parsed: Parsed) {
        let bytes = text.len() + parsed.as_ref().map_or(0, |e| e.regex_bytes());
        if self.entries.contains_key(text) || bytes > self.max_bytes {
            return;
        }
        while self.entries.len() >= self.max_entries || self.bytes + bytes > self.max_bytes {
            let Some((_, oldest)) = self.by_use.pop_first() else {
                break;
            };
            if let Some(gone) = self.entries.remove(&oldest) {
                self.bytes -= gone.bytes;
            }
        }
        self.tick += 1;
        let key: Arc<str> = text.into();
        self.by_use.insert(self.tick, key.clone());
        self.entries.insert(
            key,
            Entry {
                parsed,
                bytes,
                used: self.tick,
            },
        );
        self.bytes += bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Parsed {
        parse(text).map(Arc::new)
    }

    fn same(a: &Parsed, b: &Parsed) -> bool {
        match (a, b) {
            (Ok(a), Ok(b)) => Arc::ptr_eq(a, b),
            (Err(a), Err(b)) => a == b,
            _ => false,
        }
    }

    #[test]
    fn the_same_text_gets_the_same_compiled_expression() {
        let text = "attribute:ecs.instance-type =~ t2.*";
        let a = parse_shared(text).unwrap();
        let b = parse_shared(text).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "compiled twice");
        // A refusal is kept too, and is the one `parse` gives.
        let bad = "attribute:x =~ '(unclosed'";
        assert_eq!(parse_shared(bad).unwrap_err(), parse(bad).unwrap_err());
        assert_eq!(parse_shared(bad).unwrap_err(), parse(bad).unwrap_err());
    }

    #[test]
    fn the_least_recently_used_goes_first_when_full() {
        let mut c = Cache::new(2, usize::MAX);
        let (a, b, d) = (
            "agentConnected == true",
            "runningTasksCount > 1",
            "task:group == x",
        );
        let pa = parsed(a);
        c.insert(a, pa.clone());
        c.insert(b, parsed(b));
        // Using `a` makes `b` the oldest.
        assert!(same(&c.get(a).unwrap(), &pa));
        c.insert(d, parsed(d));
        assert!(c.get(b).is_none());
        assert!(same(&c.get(a).unwrap(), &pa));
        assert!(c.get(d).is_some());
        assert_eq!(c.entries.len(), 2);
        assert_eq!(c.by_use.len(), 2);
    }

    #[test]
    fn compiled_bytes_are_bounded() {
        let big = "attribute:a =~ \\w{16}";
        let size = parse(big).unwrap().regex_bytes() + big.len();
        assert!(size > 800_000, "{size}");
        let mut c = Cache::new(100, 2 * size + 100);
        for i in 0..5 {
            let text = format!("{big} or attribute:b{i} exists");
            c.insert(&text, parsed(&text));
            assert!(c.bytes <= 2 * size + 100, "{} bytes kept", c.bytes);
        }
        assert_eq!(c.entries.len(), 2);
        assert_eq!(c.bytes, c.entries.values().map(|e| e.bytes).sum::<usize>());
        // One that could never fit is not kept, and evicts nothing.
        let mut tiny = Cache::new(100, 10);
        tiny.insert(big, parsed(big));
        assert!(tiny.entries.is_empty());
    }
}
