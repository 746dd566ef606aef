//! What a scheduler asks the engine: the tasks' needs, constraints and strategies, parsed from
//! the ECS shapes (`placementConstraints`, `placementStrategy`) with errors a person can act on.

use std::sync::Arc;

use berth_model::InstanceId;
use berth_model::entity::{Name, Reservation};

use crate::query::{self, Expr, ParseError};

/// Constraints are binding: an instance that breaks one is not a candidate.
#[derive(Debug, Clone)]
pub enum Constraint {
    /// No two tasks of the group on one instance.
    DistinctInstance,
    /// Only instances the cluster-query-language expression holds for. Shared: the same text
    /// is compiled once (see [`query::parse_shared`]).
    MemberOf(Arc<Expr>),
}

/// What `spread` balances over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpreadField {
    /// `instanceId` (or its synonym `host`).
    Instance,
    /// `attribute:<name>`: the attribute's value, absent being a value of its own.
    Attribute(String),
}

/// What `binpack` packs by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinpackField {
    Cpu,
    Memory,
}

/// Strategies are best effort, applied in order: each keeps the best candidates of the ones
/// the previous strategy kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    Random,
    Spread(SpreadField),
    Binpack(BinpackField),
}

/// One placement request: `count` tasks of `group`, each reserving `reservation` plus
/// `dynamic_tcp`/`dynamic_udp` host ports chosen by the engine.
#[derive(Debug, Clone)]
pub struct PlacementRequest {
    pub cluster: String,
    /// The task group: spread and distinctInstance count the group's tasks.
    pub group: String,
    pub reservation: Reservation,
    pub dynamic_tcp: usize,
    pub dynamic_udp: usize,
    pub count: usize,
    pub constraints: Vec<Constraint>,
    pub strategies: Vec<Strategy>,
    /// StartTask: exactly these instances, one task each, no strategies.
    pub instances: Option<Vec<InstanceId>>,
    /// Only the instances of this capacity provider (a strategy's share of a launch).
    pub capacity_provider: Option<Name>,
    /// Record a verdict for every instance (dry-run and explain). Also disables the binpack
    /// fast path, which does not look at every instance.
    pub explain: bool,
}

impl PlacementRequest {
    /// A request for `count` tasks with no constraints, placed at random (RunTask's default).
    pub fn new(cluster: &str, group: &str, reservation: Reservation, count: usize) -> Self {
        Self {
            cluster: cluster.to_owned(),
            group: group.to_owned(),
            reservation,
            dynamic_tcp: 0,
            dynamic_udp: 0,
            count,
            constraints: Vec::new(),
            strategies: Vec::new(),
            instances: None,
            capacity_provider: None,
            explain: false,
        }
    }
}

/// Why a placement constraint or strategy does not parse. Each message is what the ECS API
/// answers (`InvalidParameterException`), so a user can correct the request from it alone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// A `distinctInstance` constraint was given an expression.
    #[error("A distinctInstance constraint takes no expression")]
    DistinctInstanceExpression,
    /// A `memberOf` constraint has no expression, or only blanks.
    #[error("A memberOf constraint needs an expression in the cluster query language")]
    MissingExpression,
    /// A `memberOf` expression is not valid cluster query language. The parser's error is part
    /// of the message (as the API has always answered it), so it is a field, not a `#[source]`
    /// that a chain printer would repeat.
    #[error("memberOf expression '{text}': {error}")]
    InvalidExpression {
        /// The expression as given.
        text: String,
        /// Where and why it does not parse.
        error: ParseError,
    },
    /// The constraint type is neither `distinctInstance` nor `memberOf`.
    #[error("'{0}' is not a placement constraint type; expected distinctInstance or memberOf")]
    InvalidConstraint(String),
    /// A `spread` strategy has no field.
    #[error("A spread strategy needs a field: instanceId, host or attribute:<name>")]
    MissingSpreadField,
    /// A `spread` field that is not `instanceId`, `host` or `attribute:<name>`.
    #[error("'{0}' is not a spread field; expected instanceId, host or attribute:<name>")]
    InvalidSpreadField(String),
    /// A `binpack` field that is not `cpu` or `memory` (empty when there was none).
    #[error("'{0}' is not a binpack field; expected cpu or memory")]
    InvalidBinpackField(String),
    /// The strategy type is none of `random`, `spread` and `binpack`.
    #[error("'{0}' is not a placement strategy type; expected random, spread or binpack")]
    InvalidStrategy(String),
}

/// Parses an ECS placement constraint (`type`, `expression`). A `memberOf` expression is
/// compiled once per text and shared, as stored constraints are parsed again on every RunTask
/// and reconcile.
pub fn parse_constraint(kind: &str, expression: Option<&str>) -> Result<Constraint, RequestError> {
    match kind {
        "distinctInstance" => match expression {
            None | Some("") => Ok(Constraint::DistinctInstance),
            Some(_) => Err(RequestError::DistinctInstanceExpression),
        },
        "memberOf" => {
            let text = expression
                .filter(|e| !e.trim().is_empty())
                .ok_or(RequestError::MissingExpression)?;
            query::parse_shared(text)
                .map(Constraint::MemberOf)
                .map_err(|error| RequestError::InvalidExpression {
                    text: text.to_owned(),
                    error,
                })
        }
        other => Err(RequestError::InvalidConstraint(other.to_owned())),
    }
}

/// Parses an ECS placement strategy (`type`, `field`).
pub fn parse_strategy(kind: &str, field: Option<&str>) -> Result<Strategy, RequestError> {
    match kind {
        "random" => Ok(Strategy::Random),
        "spread" => {
            let field = field.ok_or(RequestError::MissingSpreadField)?;
            if field.eq_ignore_ascii_case("instanceId") || field.eq_ignore_ascii_case("host") {
                return Ok(Strategy::Spread(SpreadField::Instance));
            }
            match field
                .get(..10)
                .filter(|p| p.eq_ignore_ascii_case("attribute:"))
            {
                Some(_) if field.len() > 10 => Ok(Strategy::Spread(SpreadField::Attribute(
                    field[10..].to_owned(),
                ))),
                _ => Err(RequestError::InvalidSpreadField(field.to_owned())),
            }
        }
        "binpack" => match field.map(str::to_ascii_lowercase).as_deref() {
            Some("cpu") => Ok(Strategy::Binpack(BinpackField::Cpu)),
            Some("memory") => Ok(Strategy::Binpack(BinpackField::Memory)),
            _ => Err(RequestError::InvalidBinpackField(
                field.unwrap_or_default().to_owned(),
            )),
        },
        other => Err(RequestError::InvalidStrategy(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_and_constraints_parse_as_ecs_spells_them() {
        assert_eq!(parse_strategy("random", None), Ok(Strategy::Random));
        assert_eq!(
            parse_strategy("spread", Some("attribute:ecs.availability-zone")),
            Ok(Strategy::Spread(SpreadField::Attribute(
                "ecs.availability-zone".into()
            )))
        );
        assert_eq!(
            parse_strategy("spread", Some("host")),
            Ok(Strategy::Spread(SpreadField::Instance))
        );
        assert_eq!(
            parse_strategy("spread", Some("instanceId")),
            Ok(Strategy::Spread(SpreadField::Instance))
        );
        assert_eq!(
            parse_strategy("binpack", Some("memory")),
            Ok(Strategy::Binpack(BinpackField::Memory))
        );
        assert!(
            parse_strategy("binpack", Some("disk"))
                .unwrap_err()
                .to_string()
                .contains("cpu or memory")
        );
        assert!(parse_strategy("spread", None).is_err());
        assert!(parse_strategy("spread", Some("attribute:")).is_err());
        assert!(
            parse_strategy("pack", None)
                .unwrap_err()
                .to_string()
                .contains("random, spread or binpack")
        );
        assert!(matches!(
            parse_constraint("distinctInstance", None),
            Ok(Constraint::DistinctInstance)
        ));
        assert!(parse_constraint("distinctInstance", Some("x == y")).is_err());
        assert!(matches!(
            parse_constraint("memberOf", Some("attribute:ecs.instance-type =~ t2.*")),
            Ok(Constraint::MemberOf(_))
        ));
        let e = parse_constraint("memberOf", Some("attribute:x = 1")).unwrap_err();
        assert!(e.to_string().contains("column"), "{e}");
        assert!(parse_constraint("memberOf", None).is_err());
        assert!(parse_constraint("sameAs", None).is_err());
    }

    /// Stored constraints are parsed again on every RunTask and every reconcile of a service;
    /// their regexes must be compiled once, not each time.
    #[test]
    fn a_stored_expression_is_compiled_once() {
        let text = "attribute:ecs.instance-type =~ g2.* and attribute:zone =~ us-east-1[ab]";
        let compiled = || match parse_constraint("memberOf", Some(text)) {
            Ok(Constraint::MemberOf(e)) => e,
            other => panic!("{other:?}"),
        };
        assert!(Arc::ptr_eq(&compiled(), &compiled()));
    }
}
