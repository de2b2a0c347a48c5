//! The query filter (README, "The API"): a MongoDB-style filter parsed from JSON into a typed
//! expression that both registries understand. The in-memory registry evaluates it here;
//! the MongoDB registry renders the same expression to BSON, so no client-supplied
//! document ever reaches a database unparsed.
//!
//! The two registries must give the same answers, so evaluation follows MongoDB's own
//! rules rather than intuition: paths fan out over arrays, `null` matches missing fields,
//! comparisons stay within a BSON type bracket, and sorting uses BSON order.
//!
//! - `parse`: the checks of §3 and the building of [`Expr`];
//! - `pattern`: `$regex`, moved from MongoDB's PCRE dialect onto the `regex` crate;
//! - `backtrack`: the `$regex` patterns refused because PCRE can take exponential time on
//!   them;
//! - `eval`: matching a record, with MongoDB's path and comparison semantics;
//! - `order`: sort keys and the query window.

mod backtrack;
mod eval;
mod order;
mod parse;
mod pattern;
#[cfg(test)]
mod tests;

use std::cmp::Ordering;

use serde_json::Value;

use crate::error::Result;
use crate::types::{ClusterId, InstanceRecord, NodeId};

/// Default number of instances a query returns.
pub const DEFAULT_LIMIT: u64 = 1000;
/// Most instances one query may return.
pub const MAX_LIMIT: u64 = 10_000;
/// Most results a query may pass over; deeper pages should narrow the filter instead.
pub const MAX_SKIP: u64 = 1_000_000;
/// Deepest filter accepted (each object or array level counts).
pub const MAX_FILTER_DEPTH: usize = 8;
/// Largest filter accepted, as compact JSON.
pub const MAX_FILTER_BYTES: usize = 16 * 1024;
/// Longest `$regex` pattern accepted.
pub const MAX_REGEX_LEN: usize = 256;

/// The instance fields a filter or a sort may name. `metadata` may be followed by a dotted
/// path into the caller's object. URLs are derived, not stored, so they are not filterable.
pub const FILTERABLE_FIELDS: [&str; 10] = [
    "framedb_id",
    "cluster_id",
    "node_id",
    "storage_size",
    "port",
    "status",
    "deletion_policy",
    "created_at",
    "updated_at",
    "metadata",
];

/// A dotted path whose first segment is one of [`FILTERABLE_FIELDS`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldPath {
    segments: Vec<String>,
}

/// A parsed, checked filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Every sub-expression matches (`$and`, or the fields of one filter object).
    And(Vec<Expr>),
    /// At least one sub-expression matches (`$or`).
    Or(Vec<Expr>),
    /// No sub-expression matches (`$nor`).
    Nor(Vec<Expr>),
    /// Every condition holds on the field at the path.
    Field(FieldPath, Vec<Condition>),
}

/// One operator applied to a field.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `$eq`, or a plain value.
    Eq(Value),
    /// `$ne`.
    Ne(Value),
    /// `$gt`.
    Gt(Value),
    /// `$gte`.
    Gte(Value),
    /// `$lt`.
    Lt(Value),
    /// `$lte`.
    Lte(Value),
    /// `$in`.
    In(Vec<Value>),
    /// `$nin`.
    Nin(Vec<Value>),
    /// `$exists`.
    Exists(bool),
    /// `$regex` (with `$options`).
    Regex(Pattern),
    /// `$not`: none of these conditions holds together.
    Not(Vec<Condition>),
}

/// A bounded `$regex` with its `$options`, compiled once.
#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    options: String,
    regex: regex::Regex,
    /// Whether a `$` in the pattern may also match before a final newline, as PCRE's does.
    dollar_before_newline: bool,
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && self.options == other.options
    }
}

/// A parsed filter: the typed expression of a JSON filter object.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    expr: Expr,
}

/// The order of query results: one field, ascending or descending, then `framedb_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sort {
    /// The field sorted on.
    pub field: FieldPath,
    /// Whether the order is descending (`-field`).
    pub descending: bool,
}

/// The query string of `/query`, before it is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct QueryOptions {
    /// Most results to return (default 1000, at most 10000).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 10000))]
    pub limit: Option<u64>,
    /// Results to pass over first (at most 1000000).
    #[cfg_attr(feature = "openapi", param(maximum = 1000000))]
    pub skip: Option<u64>,
    /// A filterable field's name, with `-` in front for descending.
    #[cfg_attr(
        feature = "openapi",
        param(
            pattern = r"^-?(framedb_id|cluster_id|node_id|storage_size|port|status|deletion_policy|created_at|updated_at|metadata(\.[^.$\x00][^.\x00]*)*)$",
            example = "-created_at"
        )
    )]
    pub sort: Option<String>,
}

/// A checked query: a filter, an order, and a window.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// Which instances.
    pub filter: Filter,
    /// In which order; `None` orders by `framedb_id`.
    pub sort: Option<Sort>,
    /// How many to pass over.
    pub skip: u64,
    /// How many to return at most.
    pub limit: u64,
}

impl FieldPath {
    /// Parses a dotted path: the first segment is one of [`FILTERABLE_FIELDS`], only
    /// `metadata` may be followed by more, and no segment is empty or starts with `$`.
    ///
    /// # Errors
    /// [`crate::Error::Invalid`] with a sentence naming the broken rule.
    pub fn parse(text: &str) -> Result<Self> {
        parse::field_path(text, "filter field")
    }

    /// The path's segments; the first is one of [`FILTERABLE_FIELDS`].
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The path in dotted form.
    pub fn dotted(&self) -> String {
        self.segments.join(".")
    }

    /// A one-segment path to a top-level field the caller knows is filterable.
    fn top(field: &str) -> Self {
        debug_assert!(FILTERABLE_FIELDS.contains(&field));
        Self {
            segments: vec![field.to_owned()],
        }
    }
}

impl Pattern {
    /// Checks and compiles a `$regex` pattern with its `$options` letters.
    ///
    /// # Errors
    /// [`crate::Error::Invalid`] when the pattern is longer than [`MAX_REGEX_LEN`], holds a
    /// NUL, uses syntax that cannot be matched faithfully (lookaround, backreferences), has
    /// a shape a backtracking engine can take exponential time on (nested quantifiers such
    /// as `(a+)+`, or alternatives under a repetition that can start alike or match
    /// nothing, such as `(x|x)*`), or when the options hold letters other than `imsx`.
    pub fn new(source: &str, options: &str) -> Result<Self> {
        pattern::compile(source, options)
    }

    /// The pattern as the caller wrote it.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The `$options` letters (a subset of `imsx`).
    pub fn options(&self) -> &str {
        &self.options
    }

    /// Whether `text` matches.
    pub fn is_match(&self, text: &str) -> bool {
        pattern::is_match(self, text)
    }
}

impl Filter {
    /// Parses a JSON filter.
    ///
    /// # Errors
    /// [`crate::Error::Invalid`] with a sentence for anything the filter does not allow.
    pub fn parse(value: &Value) -> Result<Self> {
        parse::filter(value).map(|expr| Self { expr })
    }

    /// The filter that matches every instance (`{}`).
    pub fn all() -> Self {
        Self {
            expr: Expr::And(Vec::new()),
        }
    }

    /// The instances of one cluster.
    pub fn cluster(cluster: &ClusterId) -> Self {
        Self {
            expr: Expr::And(vec![equals("cluster_id", cluster.as_str())]),
        }
    }

    /// The instances on one node of one cluster.
    pub fn cluster_node(cluster: &ClusterId, node: &NodeId) -> Self {
        Self {
            expr: Expr::And(vec![
                equals("cluster_id", cluster.as_str()),
                equals("node_id", node.as_str()),
            ]),
        }
    }

    /// The typed expression, for renderers.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// Whether `record` matches, with MongoDB's semantics.
    pub fn matches(&self, record: &InstanceRecord) -> bool {
        eval::matches(&self.expr, record)
    }
}

/// `{field: text}`, as a parsed filter object would hold it.
fn equals(field: &str, text: &str) -> Expr {
    Expr::Field(
        FieldPath::top(field),
        vec![Condition::Eq(Value::String(text.to_owned()))],
    )
}

impl Sort {
    /// Parses `field` or `-field`.
    ///
    /// # Errors
    /// [`crate::Error::Invalid`] for a field outside [`FILTERABLE_FIELDS`].
    pub fn parse(text: &str) -> Result<Self> {
        parse::sort(text)
    }
}

impl Query {
    /// Checks `options` and builds the query.
    ///
    /// # Errors
    /// [`crate::Error::Invalid`] for a limit outside 1..=10000 or a bad sort field.
    pub fn new(filter: Filter, options: QueryOptions) -> Result<Self> {
        let (sort, skip, limit) = parse::window(options)?;
        Ok(Self {
            filter,
            sort,
            skip,
            limit,
        })
    }

    /// A query with the default window and order.
    pub fn with_filter(filter: Filter) -> Self {
        Self {
            filter,
            sort: None,
            skip: 0,
            limit: DEFAULT_LIMIT,
        }
    }

    /// Orders two records as this query's results are ordered (MongoDB's sort order on
    /// the sort field, then `framedb_id`).
    pub fn compare(&self, a: &InstanceRecord, b: &InstanceRecord) -> Ordering {
        order::compare(self.sort.as_ref(), a, b)
    }

    /// Filters, orders and windows records: the whole query, in memory.
    pub fn run<'a>(
        &self,
        records: impl IntoIterator<Item = &'a InstanceRecord>,
    ) -> Vec<InstanceRecord> {
        order::run(self, records)
    }
}
