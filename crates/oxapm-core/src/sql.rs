//! SQL statements as span names: a lexer that knows SQL's quotes, comments and literals, and the
//! signature Elastic's agents name database spans with (`SELECT FROM users`, `INSERT INTO orders`).
//!
//! The lexer never fails: what it does not recognize becomes an `Other` token, and an unterminated
//! quote or comment runs to the end of the statement. Whitespace separates tokens and is dropped.

use crate::model::truncate_keyword;
use std::collections::BTreeMap;
use std::iter::Peekable;
use std::sync::Mutex;

/// The keywords the signature looks for (and `OR`, of SQLite's `INSERT OR REPLACE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keyword {
    Call,
    Delete,
    From,
    Insert,
    Into,
    Merge,
    Or,
    Replace,
    Select,
    Update,
}

impl Keyword {
    const ALL: [Keyword; 10] = [
        Keyword::Call,
        Keyword::Delete,
        Keyword::From,
        Keyword::Insert,
        Keyword::Into,
        Keyword::Merge,
        Keyword::Or,
        Keyword::Replace,
        Keyword::Select,
        Keyword::Update,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Keyword::Call => "CALL",
            Keyword::Delete => "DELETE",
            Keyword::From => "FROM",
            Keyword::Insert => "INSERT",
            Keyword::Into => "INTO",
            Keyword::Merge => "MERGE",
            Keyword::Or => "OR",
            Keyword::Replace => "REPLACE",
            Keyword::Select => "SELECT",
            Keyword::Update => "UPDATE",
        }
    }

    fn parse(word: &str) -> Option<Keyword> {
        Keyword::ALL.into_iter().find(|keyword| keyword.as_str().eq_ignore_ascii_case(word))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Other,
    Comment,
    /// A name, bare or quoted (`"t"`, `` `t` ``, `[t]`: the text is then what is inside the quotes).
    Ident,
    Number,
    /// A string literal, quotes included: `'...'` or dollar-quoted (`$tag$...$tag$`).
    String,
    Period,
    Comma,
    LParen,
    RParen,
    Keyword(Keyword),
}

impl TokenKind {
    /// As Elastic's cross-agent data names token kinds.
    pub fn name(self) -> &'static str {
        match self {
            TokenKind::Other => "OTHER",
            TokenKind::Comment => "COMMENT",
            TokenKind::Ident => "IDENT",
            TokenKind::Number => "NUMBER",
            TokenKind::String => "STRING",
            TokenKind::Period => "PERIOD",
            TokenKind::Comma => "COMMA",
            TokenKind::LParen => "LPAREN",
            TokenKind::RParen => "RPAREN",
            TokenKind::Keyword(keyword) => keyword.as_str(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token<'a> {
    pub kind: TokenKind,
    pub text: &'a str,
    /// Byte offset of the token in the statement.
    pub start: usize,
}

/// The tokens of `sql`, comments included.
pub fn tokens(sql: &str) -> Tokens<'_> {
    Tokens { sql, pos: 0 }
}

pub struct Tokens<'a> {
    sql: &'a str,
    pos: usize,
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        let rest = &self.sql[self.pos..];
        let start = self.pos + (rest.len() - rest.trim_start().len());
        let rest = &self.sql[start..];
        let first = rest.chars().next()?;
        let (kind, text, len) = scan(rest, first);
        self.pos = start + len;
        Some(Token { kind, text, start })
    }
}

/// The token at the start of `rest` (which starts with `first`): its kind, text and length.
fn scan(rest: &str, first: char) -> (TokenKind, &str, usize) {
    let bytes = rest.as_bytes();
    let whole = |kind, len: usize| (kind, &rest[..len], len);
    match bytes[0] {
        b'/' if bytes.get(1) == Some(&b'*') => whole(TokenKind::Comment, block_comment_len(bytes)),
        // `--`, and `//` of CQL.
        b'-' | b'/' if bytes.get(1) == Some(&bytes[0]) => whole(TokenKind::Comment, rest.find('\n').unwrap_or(rest.len())),
        b'\'' => whole(TokenKind::String, string_len(bytes)),
        b'"' => quoted(rest, b'"'),
        b'`' => quoted(rest, b'`'),
        b'[' => quoted(rest, b']'),
        b'$' => dollar(rest),
        b'0'..=b'9' => whole(TokenKind::Number, number_len(bytes)),
        b'(' => whole(TokenKind::LParen, 1),
        b')' => whole(TokenKind::RParen, 1),
        b'.' => whole(TokenKind::Period, 1),
        b',' => whole(TokenKind::Comma, 1),
        _ if first.is_alphabetic() || first == '_' => {
            let len = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$')).unwrap_or(rest.len());
            let text = &rest[..len];
            (Keyword::parse(text).map_or(TokenKind::Ident, TokenKind::Keyword), text, len)
        }
        _ => whole(TokenKind::Other, first.len_utf8()),
    }
}

// The scanners below step over bytes: the delimiters they look for are ASCII, which never occurs
// inside a multi-byte character, so every length they return ends on a character boundary.

/// `/* ... */`, nested comments included.
fn block_comment_len(bytes: &[u8]) -> usize {
    let (mut depth, mut i) = (0usize, 0);
    while i < bytes.len() {
        if bytes[i..].starts_with(b"/*") {
            depth += 1;
            i += 2;
        } else if bytes[i..].starts_with(b"*/") {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// `'...'`, where `''` and a backslash escape a quote.
fn string_len(bytes: &[u8]) -> usize {
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'\'' if bytes.get(i + 1) == Some(&b'\'') => i += 2,
            b'\'' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// A quoted identifier closed by `close`, which doubled stands for itself.
fn quoted(rest: &str, close: u8) -> (TokenKind, &str, usize) {
    let bytes = rest.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        if bytes[i] == close {
            if bytes.get(i + 1) != Some(&close) {
                return (TokenKind::Ident, &rest[1..i], i + 1);
            }
            i += 1;
        }
        i += 1;
    }
    (TokenKind::Ident, &rest[1..], rest.len())
}

/// A dollar-quoted string (`$$...$$`, `$tag$...$tag$`), else a parameter (`$1`) or a lone `$`.
fn dollar(rest: &str) -> (TokenKind, &str, usize) {
    let tag_len = rest[1..].find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len() - 1);
    let is_tag = rest[1..].chars().next().is_none_or(|c| !c.is_ascii_digit());
    if is_tag && rest.as_bytes().get(1 + tag_len) == Some(&b'$') {
        let delimiter = &rest[..tag_len + 2];
        if let Some(at) = rest[delimiter.len()..].find(delimiter) {
            let len = 2 * delimiter.len() + at;
            return (TokenKind::String, &rest[..len], len);
        }
        // Unterminated: this was probably no dollar quote, so the token ends at the next whitespace
        // and what follows is read as SQL again.
        let len = rest.find(char::is_whitespace).unwrap_or(rest.len());
        return (TokenKind::Other, &rest[..len], len);
    }
    (TokenKind::Other, &rest[..1 + tag_len], 1 + tag_len)
}

/// `123`, `1.5`, `2e10`, `2E-3`.
fn number_len(bytes: &[u8]) -> usize {
    let digits = |from: usize| bytes[from..].iter().take_while(|b| b.is_ascii_digit()).count();
    let mut len = digits(0);
    if bytes.get(len) == Some(&b'.') && bytes.get(len + 1).is_some_and(u8::is_ascii_digit) {
        len += 1 + digits(len + 1);
    }
    if matches!(bytes.get(len), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(bytes.get(len + 1), Some(b'+' | b'-')));
        let exponent = digits(len + 1 + sign);
        if exponent > 0 {
            len += 1 + sign + exponent;
        }
    }
    len
}

/// The name of a database span for `sql`, as Elastic's agents make it:
///
/// - `SELECT FROM t`: the first table after the outermost `FROM`; subqueries in the select list
///   are skipped, and a derived table (`FROM (SELECT ...)`) gives plain `SELECT`;
/// - `INSERT INTO t`, `REPLACE INTO t`, `MERGE INTO t`, `DELETE FROM t`, `UPDATE t`, `CALL p`;
/// - names keep their qualifier (`schema.t`) and lose their quotes (`"t"`, `` `t` ``, `[t]`);
///   `LOW_PRIORITY`, `IGNORE` and `ONLY` before a table are skipped;
/// - anything else: its first word in upper case (`BEGIN`, `CREATE`, `WITH`); comments are skipped;
///   empty input gives an empty name.
///
/// At most 1024 characters, like every keyword Elastic stores.
///
/// Applications run the same statements over and over: the signatures of the first
/// `REMEMBERED_STATEMENTS` statements of up to `REMEMBERED_BYTES` are kept by their text.
pub fn signature(sql: &str) -> String {
    static REMEMBERED: Mutex<BTreeMap<Box<str>, String>> = Mutex::new(BTreeMap::new());
    let remembered = || REMEMBERED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if sql.len() > REMEMBERED_BYTES {
        return signature_of(sql);
    }
    if let Some(signature) = remembered().get(sql) {
        return signature.clone();
    }
    let signature = signature_of(sql);
    let mut remembered = remembered();
    if remembered.len() < REMEMBERED_STATEMENTS {
        remembered.insert(sql.into(), signature.clone());
    }
    signature
}

/// Kept in an ordered map, not a hashed one: statements made up to collide cannot slow it down.
const REMEMBERED_STATEMENTS: usize = 1024;
const REMEMBERED_BYTES: usize = 1024;

fn signature_of(sql: &str) -> String {
    let mut tokens = tokens(sql).filter(|token| token.kind != TokenKind::Comment).peekable();
    let Some(first) = tokens.next() else { return String::new() };
    let named = match first.kind {
        TokenKind::Keyword(Keyword::Select) => outermost_from(&mut tokens).map(|table| format!("SELECT FROM {table}")),
        TokenKind::Keyword(verb @ (Keyword::Insert | Keyword::Replace)) => {
            table_after(&mut tokens, Keyword::Into).map(|table| format!("{} INTO {table}", verb.as_str()))
        }
        TokenKind::Keyword(Keyword::Merge) => {
            tokens.next_if(|token| token.kind == TokenKind::Keyword(Keyword::Into));
            table(&mut tokens).map(|table| format!("MERGE INTO {table}"))
        }
        TokenKind::Keyword(Keyword::Delete) => table_after(&mut tokens, Keyword::From).map(|table| format!("DELETE FROM {table}")),
        TokenKind::Keyword(Keyword::Update) => table(&mut tokens).map(|table| format!("UPDATE {table}")),
        TokenKind::Keyword(Keyword::Call) => qualified_name(&mut tokens).map(|name| format!("CALL {name}")),
        _ => None,
    };
    let name = named.unwrap_or_else(|| first_word(sql, &first));
    truncate_keyword(&name).into_owned()
}

fn first_word(sql: &str, first: &Token<'_>) -> String {
    match first.kind {
        TokenKind::Keyword(_) | TokenKind::Ident => first.text.to_uppercase(),
        // `{call p}`: the text up to the next whitespace.
        _ => sql[first.start..].split(char::is_whitespace).next().unwrap_or_default().to_uppercase(),
    }
}

/// The table after the first `FROM` outside parentheses.
fn outermost_from<'a>(tokens: &mut Peekable<impl Iterator<Item = Token<'a>>>) -> Option<String> {
    let mut depth = 0usize;
    while let Some(token) = tokens.next() {
        match token.kind {
            TokenKind::LParen => depth += 1,
            TokenKind::RParen => depth = depth.saturating_sub(1),
            TokenKind::Keyword(Keyword::From) if depth == 0 => return table(tokens),
            _ => {}
        }
    }
    None
}

/// The table after the next `keyword`.
fn table_after<'a>(tokens: &mut Peekable<impl Iterator<Item = Token<'a>>>, keyword: Keyword) -> Option<String> {
    tokens.find(|token| token.kind == TokenKind::Keyword(keyword))?;
    table(tokens)
}

/// Words that may stand between a verb and its table (MySQL's and PostgreSQL's).
const TABLE_MODIFIERS: &[&str] = &["LOW_PRIORITY", "IGNORE", "ONLY"];

fn table<'a>(tokens: &mut Peekable<impl Iterator<Item = Token<'a>>>) -> Option<String> {
    while tokens.next_if(|token| token.kind == TokenKind::Ident && TABLE_MODIFIERS.iter().any(|m| m.eq_ignore_ascii_case(token.text))).is_some() {}
    qualified_name(tokens)
}

/// `name` or `a.b.name`, with its parts unquoted.
fn qualified_name<'a>(tokens: &mut Peekable<impl Iterator<Item = Token<'a>>>) -> Option<String> {
    let mut name = tokens.next_if(|token| token.kind == TokenKind::Ident)?.text.to_owned();
    while tokens.next_if(|token| token.kind == TokenKind::Period).is_some() {
        let Some(part) = tokens.next_if(|token| token.kind == TokenKind::Ident) else { break };
        name.push('.');
        name.push_str(part.text);
    }
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn tokens_of_every_cross_agent_example() {
        let cases: Vec<Value> = serde_json::from_str(include_str!("../../../tests/specs/agent-specs/sql_token_examples.json")).unwrap();
        assert_eq!(cases.len(), 14);
        for case in cases {
            let input = case["input"].as_str().unwrap();
            let expected: Vec<(&str, &str)> = case["tokens"]
                .as_array()
                .map(|tokens| tokens.iter().map(|t| (t["kind"].as_str().unwrap(), t["text"].as_str().unwrap())).collect())
                .unwrap_or_default();
            let actual: Vec<(&str, &str)> = tokens(input).map(|t| (t.kind.name(), t.text)).collect();
            assert_eq!(actual, expected, "case {}", case["name"]);
        }
    }

    #[test]
    fn remembered_signatures_are_the_signatures() {
        let long = format!("SELECT a FROM t WHERE b IN ({})", "1, ".repeat(REMEMBERED_BYTES));
        for sql in ["SELECT id FROM remembered_users WHERE id = ?", "UPDATE remembered_orders SET x = 1", long.as_str()] {
            assert_eq!(signature(sql), signature_of(sql));
            assert_eq!(signature(sql), signature_of(sql), "asked again: {sql}");
        }
    }

    #[test]
    fn unterminated_quotes_and_comments_run_to_the_end() {
        let kinds = |sql| tokens(sql).map(|t| (t.kind, t.text)).collect::<Vec<_>>();
        assert_eq!(kinds("'abc"), [(TokenKind::String, "'abc")]);
        assert_eq!(kinds("'abc\\"), [(TokenKind::String, "'abc\\")]);
        assert_eq!(kinds("\"abc"), [(TokenKind::Ident, "abc")]);
        assert_eq!(kinds("/* a /* b */"), [(TokenKind::Comment, "/* a /* b */")]);
        assert_eq!(kinds("x -- end"), [(TokenKind::Ident, "x"), (TokenKind::Comment, "-- end")]);
        assert_eq!(kinds("[a]]b]"), [(TokenKind::Ident, "a]]b")]);
    }

    #[test]
    fn offsets_point_into_the_statement() {
        let sql = "  SELECT 'é' , \"q\"";
        for token in tokens(sql) {
            assert!(sql[token.start..].contains(token.text), "{token:?}");
        }
        assert_eq!(tokens(sql).map(|t| t.start).collect::<Vec<_>>(), [2, 9, 14, 16]);
    }

    #[test]
    fn signatures() {
        let cases = [
            ("", ""),
            ("   ", ""),
            ("-- only a comment", ""),
            ("SELECT * FROM foo.bar", "SELECT FROM foo.bar"),
            ("SELECT * FROM foo.bar.baz", "SELECT FROM foo.bar.baz"),
            ("SELECT * FROM `foo`.`bar`", "SELECT FROM foo.bar"),
            ("SELECT * FROM \"foo\".\"bar\"", "SELECT FROM foo.bar"),
            ("SELECT * FROM [foo].[bar]", "SELECT FROM foo.bar"),
            ("SELECT * FROM `foo.bar`", "SELECT FROM foo.bar"),
            ("select a, b from users where id = 1", "SELECT FROM users"),
            ("SELECT (x, y) FROM foo,bar,baz", "SELECT FROM foo"),
            ("SELECT * FROM foo JOIN bar ON foo.id = bar.id", "SELECT FROM foo"),
            ("SELECT * FROM dollar$bill", "SELECT FROM dollar$bill"),
            ("SELECT id FROM \"myta\n-æøåble\" WHERE id = 2323", "SELECT FROM myta\n-æøåble"),
            ("SELECT * FROM foo-- abc\n./*def*/bar", "SELECT FROM foo.bar"),
            ("-- abc\nSELECT --comment\n* FROM /* nested /* comment */ */ foo", "SELECT FROM foo"),
            ("SELECT *,(SELECT COUNT(*) FROM table2 WHERE table2.field1 = table1.id) AS count FROM table1 WHERE table1.field1 = 'value'", "SELECT FROM table1"),
            ("SELECT * FROM (SELECT foo FROM bar) AS foo_bar", "SELECT"),
            ("SELECT 1", "SELECT"),
            ("SELECT 'FROM x' FROM y", "SELECT FROM y"),
            ("SELECT * FROM ONLY parent", "SELECT FROM parent"),
            ("SELECT * FROM 选择", "SELECT FROM 选择"),
            ("DELETE FROM foo.bar WHERE baz=1", "DELETE FROM foo.bar"),
            ("delete low_priority from t", "DELETE FROM t"),
            ("DELETE t1 FROM t1 JOIN t2", "DELETE FROM t1"),
            ("UPDATE IGNORE foo.bar SET bar=1 WHERE baz=2", "UPDATE foo.bar"),
            ("UPDATE ONLY foo AS bar SET baz=1", "UPDATE foo"),
            ("update t1 join t2 on t1.a = t2.a set t1.b = 1", "UPDATE t1"),
            ("INSERT INTO foo.bar (col) VALUES(?)", "INSERT INTO foo.bar"),
            ("insert low_priority ignore into foo.bar (col) values(?)", "INSERT INTO foo.bar"),
            ("INSERT OR REPLACE INTO kv VALUES (1, 2)", "INSERT INTO kv"),
            ("REPLACE INTO foo.bar (col) VALUES(?)", "REPLACE INTO foo.bar"),
            ("MERGE INTO target t USING source s ON t.id = s.id", "MERGE INTO target"),
            ("MERGE dbo.target AS t USING source", "MERGE INTO dbo.target"),
            ("CALL foo(bar, 123)", "CALL foo"),
            ("call pkg.proc()", "CALL pkg.proc"),
            ("{call foo(bar, 123)}", "{CALL"),
            ("WITH cte AS (SELECT * FROM foo) SELECT * FROM bar", "WITH"),
            ("begin;", "BEGIN"),
            ("COMMIT", "COMMIT"),
            ("create table t (id int)", "CREATE"),
            ("/* leading */ TRUNCATE TABLE t", "TRUNCATE"),
            ("SELECT * FROM", "SELECT"),
            ("INSERT INTO (", "INSERT"),
            ("UPDATE", "UPDATE"),
            ("  \n\tPRAGMA foreign_keys = ON", "PRAGMA"),
            ("'just a string'", "'JUST"),
            ("$1", "$1"),
            ("(SELECT 1)", "(SELECT"),
        ];
        for (sql, expected) in cases {
            assert_eq!(signature(sql), expected, "{sql:?}");
        }
    }

    #[test]
    fn signatures_are_cut_at_1024_characters() {
        let long = format!("SELECT * FROM {}", "t".repeat(5000));
        assert_eq!(signature(&long).chars().count(), 1024);
        assert_eq!(signature(&"x".repeat(3000)).chars().count(), 1024);
    }
}
