//! `$regex`: MongoDB matches with PCRE, the in-memory registry with the `regex` crate. The
//! pattern is rewritten where the two dialects read the same text differently, so that both
//! registries give the same answers; constructs the crate lacks (lookaround,
//! backreferences) are refused rather than approximated, and so are the shapes on which
//! PCRE's backtracking can take exponential time (`backtrack`).
//!
//! The differences handled: MongoDB compiles in UTF mode without Unicode properties, so
//! `\d \w \s \b` are ASCII there but Unicode in the crate; PCRE's `\v` is vertical
//! whitespace; inside a class PCRE takes `[`, `&&`, `~~`, `--` and `#` literally and does not
//! skip whitespace in extended mode; a leading `]` in a class is literal; `\<` and `\>`
//! are literal in PCRE but word boundaries in the crate; and PCRE's `$` also matches
//! before a final newline.

use regex::RegexBuilder;
use regex_syntax::ast::Span;

use super::{MAX_REGEX_LEN, Pattern, backtrack};
use crate::error::{Error, Result};

/// Most memory one compiled pattern may use, so a short pattern cannot expand into a huge
/// automaton (`((a{100}){100}){100}` and the like).
const COMPILED_SIZE_LIMIT: usize = 1 << 20;
/// Most memory the lazy DFA of one pattern may cache.
const DFA_SIZE_LIMIT: usize = 2 << 20;

/// PCRE's `\s` (space, `\t`, `\n`, vertical tab, form feed, `\r`), as class items.
const SPACE_ITEMS: &str = r"\x09-\x0D\x20";
/// PCRE's `\w` in UTF mode without Unicode properties.
const WORD_ITEMS: &str = "0-9A-Za-z_";
/// PCRE's `\d` likewise.
const DIGIT_ITEMS: &str = "0-9";
/// PCRE's `\v`: the vertical whitespace characters.
const VERTICAL_ITEMS: &str = r"\x0A-\x0D\x{85}\x{2028}\x{2029}";

pub(super) fn compile(source: &str, options: &str) -> Result<Pattern> {
    let length = source.chars().count();
    if length > MAX_REGEX_LEN {
        return Err(Error::invalid(format!(
            "a $regex pattern may be at most {MAX_REGEX_LEN} characters long (got {length})"
        )));
    }
    if source.contains('\0') {
        return Err(Error::invalid(
            "a $regex pattern may not contain a NUL character",
        ));
    }
    if let Some(bad) = options.chars().find(|c| !"imsx".contains(*c)) {
        let shown = if bad.is_control() {
            "a control character".to_owned()
        } else {
            format!("'{bad}'")
        };
        return Err(Error::invalid(format!(
            "$options may only contain the letters i, m, s and x (got {shown})"
        )));
    }
    let translated = translate(source)?;
    let regex = RegexBuilder::new(&translated.text)
        .case_insensitive(options.contains('i'))
        .multi_line(options.contains('m'))
        .dot_matches_new_line(options.contains('s'))
        .ignore_whitespace(options.contains('x'))
        .size_limit(COMPILED_SIZE_LIMIT)
        .dfa_size_limit(DFA_SIZE_LIMIT)
        .build()
        .map_err(refused)?;
    // The crate matches any pattern in linear time; MongoDB's engine does not. Checked
    // after compiling, so that syntax the crate lacks (backreferences, lookaround) keeps
    // the crate's own reason.
    backtrack::check(
        &translated.text,
        options.contains('x'),
        options.contains('i'),
        &|span| translated.quote(source, span).to_owned(),
    )
    .map_err(Error::invalid)?;
    Ok(Pattern {
        source: source.to_owned(),
        options: options.to_owned(),
        regex,
        // `\z` must keep meaning the very end, so those patterns do without the fallback.
        dollar_before_newline: source.contains('$') && !source.contains(r"\z"),
    })
}

pub(super) fn is_match(pattern: &Pattern, text: &str) -> bool {
    if pattern.regex.is_match(text) {
        return true;
    }
    // PCRE's `$` matches at the end and also just before a final newline; the crate's only
    // at the end. Matching the text without that newline covers the second case.
    pattern.dollar_before_newline
        && text
            .strip_suffix('\n')
            .is_some_and(|trimmed| pattern.regex.is_match(trimmed))
}

/// The crate's error, as a sentence for the caller.
fn refused(error: regex::Error) -> Error {
    match error {
        regex::Error::CompiledTooBig(_) => Error::invalid(
            "the $regex pattern is too complex: it compiles to more than 1 MiB; use a simpler \
             pattern",
        ),
        regex::Error::Syntax(detail) => {
            // The crate's message spans lines with the pattern and a caret; its last line
            // says what is wrong.
            let reason = detail
                .lines()
                .rev()
                .find_map(|line| line.trim().strip_prefix("error:"))
                .map(str::trim)
                .filter(|reason| !reason.is_empty())
                .unwrap_or("it is not valid syntax");
            Error::invalid(format!(
                "the $regex pattern is not a supported regular expression ({reason}); \
                 lookaround, backreferences and other backtracking-only syntax are not \
                 available"
            ))
        }
        _ => Error::invalid("the $regex pattern is not a supported regular expression"),
    }
}

/// A pattern rewritten into the crate's syntax, and where each of its bytes came from.
struct Translated {
    text: String,
    /// For each byte of `text` and one past its end, the offset in the caller's pattern
    /// of the piece that byte was written for.
    origin: Vec<usize>,
}

impl Translated {
    /// The part of `source` that `span` of the translation was written for.
    fn quote<'s>(&self, source: &'s str, span: &Span) -> &'s str {
        &source[self.origin[span.start.offset]..self.origin[span.end.offset]]
    }
}

/// Rewrites a PCRE pattern into the crate's syntax with the same meaning (see the module
/// documentation for what differs).
fn translate(source: &str) -> Result<Translated> {
    let mut out = String::with_capacity(source.len() + 16);
    let mut origin = Vec::with_capacity(source.len() + 16);
    let mut in_class = false;
    let mut rest = source;
    while let Some(c) = rest.chars().next() {
        let start = source.len() - rest.len();
        rest = &rest[c.len_utf8()..];
        match c {
            '\\' => {
                let Some(escaped) = rest.chars().next() else {
                    // A trailing backslash: let the crate refuse it.
                    out.push('\\');
                    break;
                };
                rest = &rest[escaped.len_utf8()..];
                escape(&mut out, escaped, in_class)?;
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                if let Some(after) = rest.strip_prefix('^') {
                    out.push('^');
                    rest = after;
                }
                // A `]` right after the opening bracket is a member, not the end.
                if let Some(after) = rest.strip_prefix(']') {
                    out.push_str(r"\]");
                    rest = after;
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '[' => {
                // `[:alpha:]` keeps its meaning (ASCII in both); any other `[` in a class is
                // a plain member in PCRE but would open a nested class in the crate.
                if let Some(end) = rest.strip_prefix(':').and_then(|after| after.find(":]")) {
                    let posix = 1 + end + 2;
                    out.push('[');
                    out.push_str(&rest[..posix]);
                    rest = &rest[posix..];
                } else {
                    out.push_str(r"\[");
                }
            }
            '&' | '~' | '#' if in_class => {
                // `&&` and `~~` are set operations in the crate and `#` starts a comment in
                // its extended mode; PCRE reads them as members.
                out.push('\\');
                out.push(c);
            }
            '-' if in_class && out.ends_with('-') && !out.ends_with(r"\-") => {
                // `--` is set difference in the crate; in PCRE the second `-` ends a range
                // (as in `[+--]`) or is a member.
                out.push_str(r"\-");
            }
            ' ' | '\t' | '\n' | '\r' | '\x0B' | '\x0C' if in_class => {
                // PCRE's extended mode keeps whitespace inside classes; the crate's skips it.
                out.push_str(&format!(r"\x{:02X}", u32::from(c)));
            }
            other => out.push(other),
        }
        origin.resize(out.len(), start);
    }
    origin.resize(out.len() + 1, source.len());
    Ok(Translated { text: out, origin })
}

/// Writes the crate's form of PCRE's `\escaped`.
fn escape(out: &mut String, escaped: char, in_class: bool) -> Result<()> {
    let items = match escaped {
        'd' | 'D' => DIGIT_ITEMS,
        'w' | 'W' => WORD_ITEMS,
        's' | 'S' => SPACE_ITEMS,
        'v' | 'V' => VERTICAL_ITEMS,
        'b' | 'B' if !in_class => {
            out.push_str(if escaped == 'b' {
                r"(?-u:\b)"
            } else {
                r"(?-u:\B)"
            });
            return Ok(());
        }
        // In a class PCRE's `\b` is a backspace.
        'b' => {
            out.push_str(r"\x08");
            return Ok(());
        }
        'u' | 'U' => {
            return Err(Error::invalid(format!(
                "the $regex pattern uses \\{escaped}, which MongoDB's regular expressions do \
                 not support; write \\x{{...}} for a code point"
            )));
        }
        // Escaped punctuation is always the character itself in PCRE.
        '<' | '>' => {
            out.push(escaped);
            return Ok(());
        }
        _ => {
            out.push('\\');
            out.push(escaped);
            return Ok(());
        }
    };
    let negated = escaped.is_ascii_uppercase();
    match (in_class, negated) {
        (true, false) => out.push_str(items),
        // The crate allows a class inside a class, which unites them.
        (_, true) => {
            out.push_str("[^");
            out.push_str(items);
            out.push(']');
        }
        (false, false) => {
            out.push('[');
            out.push_str(items);
            out.push(']');
        }
    }
    Ok(())
}
