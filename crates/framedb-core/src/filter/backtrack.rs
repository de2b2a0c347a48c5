//! `$regex` patterns that a backtracking engine can take exponential time on, refused.
//!
//! The in-memory registry matches with the `regex` crate, in time linear in the text. MongoDB
//! matches with PCRE, which backtracks: when part of a text can be matched in many ways, it
//! tries every way before giving up, so `^(a+)+$` against thirty `a`s and a `b` tries
//! about 2³⁰. The two shapes behind such blow-ups are refused, whichever registry serves
//! the query, so that both accept the same filters:
//!
//! - **nested quantifiers**: a part that can repeat more than once (`*`, `+`, `{n,}`,
//!   `{n,m}` with m > 1, `{n}` with n > 1) may not contain a quantifier that leaves the count
//!   open (`*`, `+`, `?`, `{n,}`, `{n,m}` with m > n): `(a+)+`, `(a*)*`, `(\w+\s?)*`,
//!   `((ab)+c)*`, `(a{1,5}){2,}`. A fixed count leaves no choice, so `(\d{3}-)+` is fine.
//! - **overlapping alternatives**: inside such a part, the branches of an alternation must
//!   start with different characters and none may match the empty string: `(x|x)*`,
//!   `(a|ab)*`, `(a|a?)+`, `(\d|1)+` and `(.|a)*` are refused, `(a|b)*` and `(foo|bar)+`
//!   are fine.
//!
//! - **more than two open-ended repetitions** (`*`, `+`, `{n,}`) in one pattern:
//!   `a*a*a*b` or `.*x.*y.*z` take a backtracking engine time of the text's length to the
//!   power of their number (three or more: cubic and worse on a 64 KiB metadata value).
//!   Two are allowed (`^a.*b.*c$`), so that the common shapes stay; a server-side time
//!   limit on every query bounds the quadratic rest.
//!
//! Backreferences and lookaround never get here: the `regex` crate cannot parse them, and
//! `pattern` refuses what it cannot parse.
//!
//! The check reads the syntax tree (groups and repetitions as written, unlike the HIR,
//! which may merge `x|x` into one class) of the pattern in the crate's dialect, where
//! classes mean what PCRE means by them. Where exactness would take more than a
//! first-character comparison it assumes the worst: only first characters are compared
//! (`(ab|ac)*` is refused), `.` counts as every character, assertions are ignored, and one
//! `(?i)` anywhere makes every comparison case-insensitive.

use regex_syntax::ast::{
    self, Ast, Flag, FlagsItemKind, GroupKind, RepetitionKind, RepetitionRange, Span,
};
use regex_syntax::hir::translate::TranslatorBuilder;
use regex_syntax::hir::{Class, ClassUnicode, ClassUnicodeRange, HirKind, Literal};

/// Why such a pattern is refused: the end of every refusal here.
const WHY: &str = "MongoDB's regular-expression engine backtracks and can take time \
                   exponential in the length of the text on such a pattern, so it is refused";

/// Refuses `pattern` (in the crate's dialect, `extended` for the `x` option) when it has one
/// of the shapes of the module documentation, with a sentence saying which and why. `quote`
/// shows a span of `pattern` as the caller wrote it.
pub(super) fn check(
    pattern: &str,
    extended: bool,
    case_insensitive: bool,
    quote: &dyn Fn(&Span) -> String,
) -> Result<(), String> {
    let ast = ast::parse::ParserBuilder::new()
        .ignore_whitespace(extended)
        .build()
        .parse(pattern)
        // The `regex` crate has just parsed the same text with the same parser.
        .map_err(|_| "the $regex pattern is not a supported regular expression".to_owned())?;
    let checker = Checker {
        pattern,
        case_insensitive: case_insensitive || mentions_case_insensitive(&ast),
        quote,
    };
    checker.walk(&ast, None)?;
    let open = open_repetitions(&ast);
    if open > MAX_OPEN_REPETITIONS {
        return Err(format!(
            "the $regex pattern repeats {open} parts an open number of times (`*`, `+`, \
             `{{n,}}`), and at most {MAX_OPEN_REPETITIONS} are allowed: MongoDB's \
             regular-expression engine backtracks, and its time grows with the text's \
             length to the power of their number (exponential in it), so it is refused"
        ));
    }
    Ok(())
}

/// Open-ended repetitions a pattern may have: quadratic time at worst, which the
/// registry's time limit bounds.
const MAX_OPEN_REPETITIONS: usize = 2;

/// How many repetitions of `ast` have no upper bound.
fn open_repetitions(ast: &Ast) -> usize {
    match ast {
        Ast::Repetition(repetition) => {
            let open = usize::from(bounds(&repetition.op.kind).1.is_none());
            open + open_repetitions(&repetition.ast)
        }
        Ast::Group(group) => open_repetitions(&group.ast),
        Ast::Concat(concat) => concat.asts.iter().map(open_repetitions).sum(),
        Ast::Alternation(alternation) => alternation.asts.iter().map(open_repetitions).sum(),
        _ => 0,
    }
}

struct Checker<'a> {
    pattern: &'a str,
    case_insensitive: bool,
    quote: &'a dyn Fn(&Span) -> String,
}

impl Checker<'_> {
    /// Checks `ast`, which lies inside the repetition at `outer` if that can repeat more
    /// than once.
    fn walk(&self, ast: &Ast, outer: Option<&Span>) -> Result<(), String> {
        match ast {
            Ast::Repetition(repetition) => {
                let (min, max) = bounds(&repetition.op.kind);
                if let Some(outer) = outer
                    && Some(min) != max
                {
                    // The outer repetition and this one can split a text between their
                    // iterations in many ways, and a backtracking engine tries each.
                    return Err(format!(
                        "the $regex pattern has nested quantifiers: {} inside the repeated \
                         {}; {WHY}",
                        self.show(&repetition.span),
                        self.show(outer),
                    ));
                }
                let repeats = max.is_none_or(|max| max > 1);
                let outer = outer.or(repeats.then_some(&repetition.span));
                self.walk(&repetition.ast, outer)
            }
            Ast::Group(group) => self.walk(&group.ast, outer),
            Ast::Concat(concat) => concat.asts.iter().try_for_each(|ast| self.walk(ast, outer)),
            Ast::Alternation(alternation) => {
                if let Some(outer) = outer {
                    self.branches_start_apart(&alternation.asts, outer)?;
                }
                alternation
                    .asts
                    .iter()
                    .try_for_each(|ast| self.walk(ast, outer))
            }
            _ => Ok(()),
        }
    }

    /// Under a repetition, each character of the text should leave at most one branch
    /// of an alternation to try; a branch that matches nothing fits anywhere.
    fn branches_start_apart(&self, branches: &[Ast], outer: &Span) -> Result<(), String> {
        let firsts: Vec<_> = branches.iter().map(|branch| self.first(branch)).collect();
        for (index, (branch, (chars, empty))) in branches.iter().zip(&firsts).enumerate() {
            if *empty {
                let what = match (self.quote)(branch.span()) {
                    part if part.is_empty() => "an empty alternative".to_owned(),
                    _ => format!("the alternative {}", self.show(branch.span())),
                };
                return Err(format!(
                    "the $regex pattern has an alternative that can match the empty string \
                     ({what}) inside the repeated {}; {WHY}",
                    self.show(outer),
                ));
            }
            for (earlier, (earlier_chars, _)) in branches.iter().zip(&firsts).take(index) {
                let mut common = chars.clone();
                common.intersect(earlier_chars);
                if !common.ranges().is_empty() {
                    return Err(format!(
                        "the $regex pattern has overlapping alternatives: {} and {} can \
                         start with the same character inside the repeated {}; {WHY}",
                        self.show(earlier.span()),
                        self.show(branch.span()),
                        self.show(outer),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The characters a match of `ast` can start with (more, where unsure), and whether it
    /// can match the empty string.
    fn first(&self, ast: &Ast) -> (ClassUnicode, bool) {
        match ast {
            // Assertions count as empty: they only narrow where a match may start.
            Ast::Empty(_) | Ast::Flags(_) | Ast::Assertion(_) => (ClassUnicode::empty(), true),
            Ast::Dot(_) => (everything(), false),
            Ast::Literal(_) | Ast::ClassUnicode(_) | Ast::ClassPerl(_) | Ast::ClassBracketed(_) => {
                (self.chars(ast), false)
            }
            Ast::Repetition(repetition) => {
                let (chars, empty) = self.first(&repetition.ast);
                (chars, empty || bounds(&repetition.op.kind).0 == 0)
            }
            Ast::Group(group) => self.first(&group.ast),
            Ast::Alternation(alternation) => {
                let mut all = (ClassUnicode::empty(), false);
                for branch in &alternation.asts {
                    let (chars, empty) = self.first(branch);
                    all.0.union(&chars);
                    all.1 |= empty;
                }
                all
            }
            Ast::Concat(concat) => {
                let mut chars = ClassUnicode::empty();
                for item in &concat.asts {
                    let (more, empty) = self.first(item);
                    chars.union(&more);
                    if !empty {
                        return (chars, false);
                    }
                }
                (chars, true)
            }
        }
    }

    /// The characters a one-character item matches, case-folded when matching ignores
    /// case: the crate's own translation, so classes mean exactly what they match.
    fn chars(&self, item: &Ast) -> ClassUnicode {
        let hir = TranslatorBuilder::new()
            .case_insensitive(self.case_insensitive)
            .build()
            .translate(self.pattern, item);
        match hir.as_ref().map(|hir| hir.kind()) {
            Ok(HirKind::Class(Class::Unicode(class))) => class.clone(),
            // A class of one character comes back as a literal.
            Ok(HirKind::Literal(Literal(bytes))) => std::str::from_utf8(bytes)
                .ok()
                .and_then(|text| text.chars().next())
                .map_or_else(everything, |c| {
                    ClassUnicode::new([ClassUnicodeRange::new(c, c)])
                }),
            // Byte classes or anything unforeseen: assume the worst.
            _ => everything(),
        }
    }

    /// A span as the caller wrote it, quoted, with control characters escaped.
    fn show(&self, span: &Span) -> String {
        let mut shown = String::from("'");
        for c in (self.quote)(span).chars() {
            if c.is_control() {
                shown.extend(c.escape_default());
            } else {
                shown.push(c);
            }
        }
        shown.push('\'');
        shown
    }
}

/// The least and the most times a repetition matches (`None`: no limit).
fn bounds(kind: &RepetitionKind) -> (u32, Option<u32>) {
    match kind {
        RepetitionKind::ZeroOrOne => (0, Some(1)),
        RepetitionKind::ZeroOrMore => (0, None),
        RepetitionKind::OneOrMore => (1, None),
        RepetitionKind::Range(RepetitionRange::Exactly(n)) => (*n, Some(*n)),
        RepetitionKind::Range(RepetitionRange::AtLeast(n)) => (*n, None),
        RepetitionKind::Range(RepetitionRange::Bounded(m, n)) => (*m, Some(*n)),
    }
}

fn everything() -> ClassUnicode {
    ClassUnicode::new([ClassUnicodeRange::new('\0', char::MAX)])
}

/// Whether the pattern turns on case-insensitivity anywhere (`(?i)`, `(?i:…)`), even if it
/// turns it off again: comparing case-insensitively only finds more overlaps.
fn mentions_case_insensitive(ast: &Ast) -> bool {
    let sets_it = |flags: &ast::Flags| {
        flags
            .items
            .iter()
            .any(|item| matches!(item.kind, FlagsItemKind::Flag(Flag::CaseInsensitive)))
    };
    match ast {
        Ast::Flags(set) => sets_it(&set.flags),
        Ast::Group(group) => {
            matches!(&group.kind, GroupKind::NonCapturing(flags) if sets_it(flags))
                || mentions_case_insensitive(&group.ast)
        }
        Ast::Repetition(repetition) => mentions_case_insensitive(&repetition.ast),
        Ast::Alternation(alternation) => alternation.asts.iter().any(mentions_case_insensitive),
        Ast::Concat(concat) => concat.asts.iter().any(mentions_case_insensitive),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use crate::error::Error;
    use crate::filter::Pattern;

    #[track_caller]
    fn refused(source: &str, options: &str, says: &str) {
        match Pattern::new(source, options) {
            Err(Error::Invalid(message)) => {
                assert!(message.contains(says), "{source}: {message}");
                assert!(message.contains("exponential"), "{source}: {message}");
            }
            other => panic!("{source} should be refused, got {other:?}"),
        }
    }

    #[track_caller]
    fn accepted(source: &str, options: &str) {
        if let Err(error) = Pattern::new(source, options) {
            panic!("{source} should be accepted: {error}");
        }
    }

    #[test]
    fn nested_quantifiers_are_refused() {
        refused(
            "^(a+)+$",
            "",
            "nested quantifiers: 'a+' inside the repeated '(a+)+'",
        );
        refused(
            "(a*)*",
            "",
            "nested quantifiers: 'a*' inside the repeated '(a*)*'",
        );
        // Quoted as written, not as translated to the crate's dialect.
        refused(r"(\w+\s?)*", "", r"'\w+' inside the repeated '(\w+\s?)*'");
        refused("((ab)+c)*", "", "'(ab)+' inside the repeated '((ab)+c)*'");
        refused(
            "(a{1,5}){2,}",
            "",
            "'a{1,5}' inside the repeated '(a{1,5}){2,}'",
        );
        refused("(a+){3}", "", "nested quantifiers");
        refused("(?:x(?:y*)z)+", "", "nested quantifiers: 'y*'");
        // An optional part leaves a choice too: `(a?){30}` tries every subset of the `a`s.
        refused("(a?){30}a{30}", "", "nested quantifiers: 'a?'");
        refused("(a?b?)*c", "", "nested quantifiers: 'a?'");
        // The rule reads the shape only: here `, ` keeps the iterations apart, but the
        // pattern is refused all the same.
        refused(
            "^[A-Z][a-z]+(, [A-Z][a-z]+)*$",
            "",
            "nested quantifiers: '[a-z]+'",
        );
    }

    #[test]
    fn overlapping_alternatives_are_refused() {
        refused("(x|x)*y", "", "overlapping alternatives: 'x' and 'x'");
        refused("(a|ab)*", "", "overlapping alternatives: 'a' and 'ab'");
        refused(r"(\d|1)+", "", r"overlapping alternatives: '\d' and '1'");
        refused("(.|a)*", "", "overlapping alternatives: '.' and 'a'");
        refused("(a|b|[^c])*", "", "'a' and '[^c]'");
        refused("(?:(a|bc)|b)+", "", "'(a|bc)' and 'b'");
        refused("(a|B|b)+", "i", "'B' and 'b'");
        // Case-insensitive through the option or a flag anywhere.
        refused("(a|A)+", "i", "overlapping alternatives");
        refused("(?i)(x|X)*y", "", "overlapping alternatives");
        refused("(k|\u{212A})+", "i", "overlapping alternatives");
        // In extended mode, whitespace is skipped (and `( a | b )*` is accepted below).
        refused("( a | a b )*", "x", "overlapping alternatives");
    }

    #[test]
    fn alternatives_matching_nothing_are_refused() {
        refused("(a|a?)+", "", "the empty string (the alternative 'a?')");
        refused("(a|)*", "", "the empty string (an empty alternative)");
        refused("(a|^)*", "", "the empty string (the alternative '^')");
    }

    #[test]
    fn more_than_two_open_repetitions_are_refused() {
        refused("a*a*a*a*a*b", "", "repeats 5 parts an open number of times");
        refused(".*.*.*.*.*.*x", "", "repeats 6 parts");
        refused(".*x.*y.*z", "", "repeats 3 parts");
        refused("a+b{2,}c*", "", "repeats 3 parts");
        accepted("^a.*b.*c$", "");
        accepted(".*x.*", "");
        accepted("a{1,9}b{2,5}c*d+", "");
    }

    #[test]
    fn backreferences_and_lookaround_are_refused() {
        for (source, says) in [
            (r"(a)\1", "backreferences are not supported"),
            (r"(?<n>a)\k<n>", "not a supported regular expression"),
            ("a(?=b)", "look-around"),
            ("(?<!a)b", "look-around"),
        ] {
            match Pattern::new(source, "") {
                Err(Error::Invalid(message)) => assert!(message.contains(says), "{message}"),
                other => panic!("{source} should be refused, got {other:?}"),
            }
        }
    }

    #[test]
    fn ordinary_patterns_are_accepted() {
        for source in [
            "(ab)+",
            "(foo|bar)*",
            "(a|b)*",
            "(foo|bar)+",
            r"^tidb-\d+$",
            "^(prod|staging)-",
            "analytics",
            r"[a-z]+@example\.com",
            "^a.*b$",
            r"^(\d{3}-)+\d{4}$",
            "(a|b)?c",
            r"^(\w+)\.(\w+)$",
            r"(x|y)+|(x|y)*z",
            r"\bcat\b",
            "(?i)^(prod|staging)",
            "(a|b){2}",
        ] {
            accepted(source, "");
        }
        accepted("(a|A)+", "");
        accepted("(foo|bar)+", "i");
        accepted("( a | b )*", "x");
    }
}
