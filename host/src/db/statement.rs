//! A SQL lexer that agrees with PostgreSQL's on where a statement ends and what its words are:
//! whitespace, `--` comments (ended by a newline or a carriage return), nested `/* */` comments,
//! `'…'` strings (doubled quotes), `E'…'` strings (backslash escapes), `U&'…'`, `B'…'`, `X'…'`
//! and `N'…'` strings, `"…"` and `U&"…"` identifiers (decoded, so `U&"set\005fconfig"` reads as
//! `set_config`), dollar quotes (`$$…$$`, `$tag$…$tag$`, but not the parameter `$1`), words.
//! The gateway refuses by it what modules may not send, and migrations may not end their
//! transaction. (Migrations also run statement by statement through the extended protocol, which
//! takes one statement per message: a statement this lexer joined by mistake is refused by
//! PostgreSQL itself.)

/// One token of a statement that the checks look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// An unquoted word (keyword or identifier), lowercased as PostgreSQL folds it.
    Word(String),
    /// A quoted identifier, decoded (`"Set_Config"` stays as written).
    Quoted(String),
    /// A string constant (its text does not matter to the checks).
    Text,
    /// Anything else: an operator, a number, punctuation, a parameter.
    Other(char),
}

impl Token {
    /// Whether the token names `name` (a lowercase identifier) as PostgreSQL resolves it.
    fn names(&self, name: &str) -> bool {
        match self {
            Token::Word(word) | Token::Quoted(word) => word == name,
            _ => false,
        }
    }
}

/// The statements of `sql`, trimmed, without their `;`, empty ones (only comments) dropped.
pub fn split(sql: &str) -> Vec<&str> {
    let mut statements = Vec::new();
    let mut start = 0;
    let mut lexer = Lexer::new(sql);
    while let Some((at, token)) = lexer.next_token() {
        if token == Token::Other(';') {
            push(&mut statements, &sql[start..at]);
            start = at + 1;
        }
    }
    push(&mut statements, &sql[start..]);
    statements
}

fn push<'a>(statements: &mut Vec<&'a str>, statement: &'a str) {
    if Lexer::new(statement).next_token().is_some() {
        statements.push(statement.trim());
    }
}

/// The tokens of `statement` (comments and whitespace left out).
pub fn tokens(statement: &str) -> Vec<Token> {
    let mut lexer = Lexer::new(statement);
    std::iter::from_fn(|| lexer.next_token().map(|(_, t)| t)).collect()
}

/// The first keyword of `statement`, upper case, after comments and `(`.
pub fn first_keyword(statement: &str) -> Option<String> {
    let mut lexer = Lexer::new(statement);
    std::iter::from_fn(|| lexer.next_token().map(|(_, t)| t))
        .find_map(|t| match t {
            Token::Word(word) => Some(word.to_ascii_uppercase()),
            Token::Other('(') => None,
            _ => Some(String::new()),
        })
        .filter(|k| !k.is_empty())
}

/// Functions a module's statement may not call: they change the session (which outlives the
/// call on a pooled connection) or take session-level locks.
const SESSION_FUNCTIONS: &[&str] = &[
    "set_config",
    "pg_advisory_lock",
    "pg_advisory_lock_shared",
    "pg_try_advisory_lock",
    "pg_try_advisory_lock_shared",
];

/// Whether `text` contains, in any case, what a query needs to call a session function, write
/// `pg_settings`, select `INTO` a table, or spell any of them in a `U&` identifier: one pass,
/// looking further only where a byte starts one of them.
fn suspect(text: &str) -> bool {
    let bytes = text.as_bytes();
    let at = |i: usize, needle: &str| {
        bytes
            .get(i..i + needle.len())
            .is_some_and(|b| b.eq_ignore_ascii_case(needle.as_bytes()))
    };
    (0..bytes.len()).any(|i| match bytes[i] | 0x20 {
        b's' => at(i, "set_config"),
        b'a' => at(i, "advisory"),
        b'p' => at(i, "pg_settings"),
        b'i' => at(i, "into"),
        b'u' => at(i, "u&"),
        _ => false,
    })
}

/// Why the gateway refuses a statement from a module, or `None` when it may run.
pub fn refusal(statement: &str) -> Option<String> {
    let Some(keyword) = first_keyword(statement) else {
        return Some("the statement is empty".to_owned());
    };
    let why = match keyword.as_str() {
        "SELECT" | "INSERT" | "UPDATE" | "DELETE" | "WITH" | "VALUES" | "TABLE" | "MERGE" => {
            // The hot path: a query that names none of what is refused below, in any spelling
            // (a `U&` identifier may spell anything), needs no closer look.
            if !suspect(statement) {
                return None;
            }
            let tokens = tokens(statement);
            if tokens.iter().any(|t| t.names("set_config")) {
                return Some(
                    "set_config() is refused: settings would leak to the next user of the pooled connection".to_owned(),
                );
            }
            if SESSION_FUNCTIONS
                .iter()
                .any(|f| tokens.iter().any(|t| t.names(f)))
            {
                return Some(
                    "session advisory locks are refused: they outlive the call; use pg_advisory_xact_lock in a transaction".to_owned(),
                );
            }
            if tokens.iter().any(|t| t.names("pg_settings"))
                && tokens.iter().any(|t| {
                    t.names("update") || t.names("insert") || t.names("delete") || t.names("merge")
                })
            {
                return Some(
                    "writing pg_settings is refused: it changes the session's settings, which would leak to the next user of the pooled connection".to_owned(),
                );
            }
            if selects_into(&tokens) {
                return Some(
                    "SELECT … INTO is refused: it creates a table, and tables belong in a migration; use INSERT INTO … SELECT".to_owned(),
                );
            }
            return None;
        }
        "BEGIN" | "START" | "COMMIT" | "END" | "ROLLBACK" | "ABORT" | "SAVEPOINT" | "RELEASE"
        | "PREPARE" => {
            "transaction control is the hub's: use transaction(statements) for several statements in one transaction"
        }
        "SET" | "RESET" | "DISCARD" => {
            "session settings would leak to the next user of the pooled connection"
        }
        "LISTEN" | "UNLISTEN" | "NOTIFY" => {
            "LISTEN/NOTIFY needs a connection of its own, which modules do not get"
        }
        "COPY" => "COPY is not available to modules: use INSERT",
        "DO" | "CALL" => "DO and CALL run code the hub cannot see: write the statements out",
        "CREATE" | "ALTER" | "DROP" | "TRUNCATE" | "GRANT" | "REVOKE" | "COMMENT" | "REINDEX"
        | "CLUSTER" | "VACUUM" | "ANALYZE" | "REFRESH" | "SECURITY" | "IMPORT" | "LOCK" => {
            "schema changes belong in a migration"
        }
        _ => "only SELECT, INSERT, UPDATE, DELETE, MERGE, WITH, VALUES and TABLE are allowed",
    };
    Some(format!("{keyword} is refused: {why}"))
}

/// Whether the statement is a `SELECT … INTO` (which creates a table): an `INTO` outside
/// parentheses that does not follow `INSERT` or `MERGE`.
fn selects_into(tokens: &[Token]) -> bool {
    let mut depth = 0i32;
    let mut previous: Option<&Token> = None;
    for token in tokens {
        match token {
            Token::Other('(') => depth += 1,
            Token::Other(')') => depth -= 1,
            Token::Word(word) if word == "into" && depth == 0 => {
                let after_insert = previous.is_some_and(|p| p.names("insert") || p.names("merge"));
                if !after_insert {
                    return true;
                }
            }
            _ => {}
        }
        previous = Some(token);
    }
    false
}

/// Whether `statement` ends or starts a transaction (not allowed inside a migration).
pub fn ends_transaction(statement: &str) -> bool {
    let tokens = tokens(statement);
    let words: Vec<&str> = tokens
        .iter()
        .filter_map(|t| match t {
            Token::Word(w) => Some(w.as_str()),
            _ => None,
        })
        .collect();
    match words.first().copied() {
        Some("begin" | "start" | "commit" | "end" | "abort") => true,
        // ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] name stays inside the transaction.
        Some("rollback") => {
            let rest = words[1..]
                .iter()
                .skip_while(|w| matches!(**w, "work" | "transaction"));
            !matches!(rest.clone().next(), Some(&"to"))
        }
        Some("prepare") => words.get(1) == Some(&"transaction"),
        _ => false,
    }
}

/// Whether `statement` changes who runs what follows (not allowed inside a migration, which runs
/// as the module's role).
pub fn changes_role(statement: &str) -> bool {
    let words: Vec<String> = tokens(statement)
        .into_iter()
        .filter_map(|t| match t {
            Token::Word(w) => Some(w),
            _ => None,
        })
        .collect();
    let at = |i: usize| words.get(i).map(String::as_str);
    match at(0) {
        Some("set" | "reset") => {
            let target = if matches!(at(1), Some("local" | "session")) {
                at(2)
            } else {
                at(1)
            };
            matches!(target, Some("role" | "all"))
                || (target == Some("session") && at(2) == Some("authorization"))
                || (at(1) == Some("session") && at(2) == Some("authorization"))
        }
        _ => sets_role_by_function(statement),
    }
}

/// Whether `statement` calls `set_config` on `role` or `session_authorization`, or on a setting
/// it does not name as a plain literal (so it cannot be told). A dump's header calls
/// `set_config('search_path', '', false)`, which is fine: the hub resets it after the migration.
fn sets_role_by_function(statement: &str) -> bool {
    let mut lexer = Lexer::new(statement);
    let spanned: Vec<(usize, Token)> = std::iter::from_fn(|| lexer.next_token()).collect();
    spanned.iter().enumerate().any(|(i, (_, token))| {
        if !token.names("set_config") {
            return false;
        }
        let (
            Some((_, Token::Other('('))),
            Some((from, Token::Text)),
            Some((to, Token::Other(','))),
        ) = (spanned.get(i + 1), spanned.get(i + 2), spanned.get(i + 3))
        else {
            return true;
        };
        let literal = statement[*from..*to].trim();
        let Some(name) = literal
            .strip_prefix('\'')
            .and_then(|rest| rest.strip_suffix('\''))
            .filter(|name| !name.contains(['\'', '\\']))
        else {
            return true;
        };
        matches!(
            name.to_ascii_lowercase().as_str(),
            "role" | "session_authorization"
        )
    })
}

/// PostgreSQL's lexer, as far as the checks need it.
struct Lexer<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Lexer<'a> {
        Lexer {
            text,
            bytes: text.as_bytes(),
            at: 0,
        }
    }

    fn peek(&self, offset: usize) -> Option<u8> {
        self.bytes.get(self.at + offset).copied()
    }

    /// The next token and where it starts, or `None` at the end.
    fn next_token(&mut self) -> Option<(usize, Token)> {
        loop {
            let byte = self.peek(0)?;
            match byte {
                b' ' | b'\t' | b'\n' | b'\r' | 0x0c | 0x0b => self.at += 1,
                b'-' if self.peek(1) == Some(b'-') => {
                    // A comment runs to the end of the line, which a \r ends too.
                    while self.peek(0).is_some_and(|b| b != b'\n' && b != b'\r') {
                        self.at += 1;
                    }
                }
                b'/' if self.peek(1) == Some(b'*') => self.skip_block_comment(),
                _ => break,
            }
        }
        let start = self.at;
        let byte = self.peek(0)?;
        let prefixed = |lexer: &Self, quote: u8| {
            lexer.peek(1) == Some(quote)
                || (lexer.peek(1) == Some(b'&') && lexer.peek(2) == Some(quote))
        };
        let token = match byte {
            b'\'' => {
                self.skip_quoted(b'\'', false);
                Token::Text
            }
            b'e' | b'E' if self.peek(1) == Some(b'\'') => {
                self.at += 1;
                self.skip_quoted(b'\'', true);
                Token::Text
            }
            b'b' | b'B' | b'x' | b'X' | b'n' | b'N' if self.peek(1) == Some(b'\'') => {
                self.at += 1;
                self.skip_quoted(b'\'', false);
                Token::Text
            }
            b'u' | b'U' if self.peek(1) == Some(b'&') && self.peek(2) == Some(b'\'') => {
                self.at += 2;
                self.skip_quoted(b'\'', false);
                Token::Text
            }
            b'u' | b'U' if prefixed(self, b'"') && self.peek(1) == Some(b'&') => {
                self.at += 2;
                let raw = self.quoted_identifier();
                Token::Quoted(self.unicode_escapes(&raw))
            }
            b'"' => Token::Quoted(self.quoted_identifier()),
            b'$' => match self.dollar_tag() {
                Some(tag) => {
                    let body = self.at + tag.len();
                    self.at = self.text[body..]
                        .find(tag)
                        .map_or(self.bytes.len(), |n| body + n + tag.len());
                    Token::Text
                }
                None => {
                    self.at += 1;
                    while self.peek(0).is_some_and(|b| b.is_ascii_digit()) {
                        self.at += 1;
                    }
                    Token::Other('$')
                }
            },
            b if b.is_ascii_alphabetic() || b == b'_' || b >= 0x80 => {
                while self.peek(0).is_some_and(|b| {
                    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
                }) {
                    self.at += 1;
                }
                Token::Word(self.text[start..self.at].to_ascii_lowercase())
            }
            _ => {
                let c = self.text[start..].chars().next().unwrap_or('?');
                self.at += c.len_utf8();
                Token::Other(c)
            }
        };
        Some((start, token))
    }

    /// `/* … */`, nested as PostgreSQL nests them.
    fn skip_block_comment(&mut self) {
        let mut depth = 0usize;
        while let Some(byte) = self.peek(0) {
            if byte == b'/' && self.peek(1) == Some(b'*') {
                depth += 1;
                self.at += 2;
            } else if byte == b'*' && self.peek(1) == Some(b'/') {
                depth -= 1;
                self.at += 2;
                if depth == 0 {
                    return;
                }
            } else {
                self.at += 1;
            }
        }
    }

    /// A quoted run starting at the opening `quote`: a doubled quote stands for one; with
    /// `backslash`, a backslash escapes the next character. Whether it was closed (else it runs
    /// to the end of the text).
    fn skip_quoted(&mut self, quote: u8, backslash: bool) -> bool {
        self.at += 1;
        while let Some(byte) = self.peek(0) {
            if backslash && byte == b'\\' {
                self.at += 2;
            } else if byte == quote {
                if self.peek(1) == Some(quote) {
                    self.at += 2;
                } else {
                    self.at += 1;
                    return true;
                }
            } else {
                self.at += 1;
            }
        }
        self.at = self.bytes.len();
        false
    }

    /// A `"…"` identifier from its opening quote; its text with doubled quotes undone.
    fn quoted_identifier(&mut self) -> String {
        let start = self.at + 1;
        // Unterminated, it runs to the end of the text; else to its closing quote.
        let end = if self.skip_quoted(b'"', false) {
            self.at - 1
        } else {
            self.bytes.len()
        };
        self.text
            .get(start.min(end)..end)
            .unwrap_or_default()
            .replace("\"\"", "\"")
    }

    /// `U&"…"` escapes: `\XXXX` and `\+XXXXXX` (with `UESCAPE 'c'` after the identifier, `c`
    /// instead of the backslash).
    fn unicode_escapes(&mut self, raw: &str) -> String {
        let mut escape = '\\';
        // UESCAPE 'c' may follow.
        let rest = &self.text[self.at..];
        let trimmed = rest.trim_start();
        if let Some(after) = trimmed
            .get(..7)
            .filter(|word| word.eq_ignore_ascii_case("uescape"))
            .map(|_| trimmed[7..].trim_start())
        {
            let mut chars = after.chars();
            if let (Some('\''), Some(c), Some('\'')) = (chars.next(), chars.next(), chars.next()) {
                escape = c;
                let consumed = rest.len() - after.len() + 2 + c.len_utf8();
                self.at += consumed;
            }
        }
        let mut out = String::new();
        let mut chars = raw.chars().peekable();
        while let Some(c) = chars.next() {
            if c != escape {
                out.push(c);
                continue;
            }
            if chars.peek() == Some(&escape) {
                chars.next();
                out.push(escape);
                continue;
            }
            let width = if chars.peek() == Some(&'+') {
                chars.next();
                6
            } else {
                4
            };
            let hex: String = chars.by_ref().take(width).collect();
            match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                Some(decoded) => out.push(decoded),
                None => out.push('\u{fffd}'),
            }
        }
        out
    }

    /// `$tag$` or `$$` here; `None` for `$1` and a lone `$`.
    fn dollar_tag(&self) -> Option<&'a str> {
        let rest = &self.text[self.at + 1..];
        let end = rest.find('$')?;
        let tag = &rest[..end];
        let valid = tag
            .chars()
            .enumerate()
            .all(|(n, c)| c == '_' || c.is_alphabetic() || (n > 0 && c.is_ascii_digit()));
        valid.then(|| &self.text[self.at..self.at + end + 2])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unterminated_text_runs_to_the_end_whatever_its_characters() {
        // Found by the property tests: slices inside a multi-byte character.
        for text in [
            "\"  <%\u{6d641}l\u{468}B)\u{468}\u{3fd03}",
            "U&\"\u{e9}\u{e9}",
            "U&\"x\" \u{f1}\u{f1}\u{f1}\u{f1}",
            "E'\\\u{e9}",
        ] {
            let _ = tokens(text);
            let _ = split(text);
        }
        assert_eq!(
            tokens("\"ab\u{e9}"),
            vec![Token::Quoted("ab\u{e9}".to_owned())]
        );
    }

    #[test]
    fn split_respects_quotes_comments_and_dollar_quotes() {
        let sql = "CREATE TABLE a (x text default ';');\n-- a comment; with a semicolon\n\
                   /* block; /* nested; */ still */ INSERT INTO a VALUES ('it''s; fine');\n\
                   CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;;";
        let statements = split(sql);
        assert_eq!(statements.len(), 3, "{statements:#?}");
        assert!(statements[1].ends_with("VALUES ('it''s; fine')"));
        assert!(statements[2].contains("$body$ SELECT 1; $body$"));
        assert_eq!(split("  ;  -- only a comment\n"), Vec::<&str>::new());
    }

    #[test]
    fn first_keywords_skip_noise() {
        assert_eq!(
            first_keyword("  /* hi */ -- x\n (select 1)").as_deref(),
            Some("SELECT")
        );
        assert_eq!(
            first_keyword("with x as (select 1) select * from x").as_deref(),
            Some("WITH")
        );
        assert_eq!(first_keyword("  "), None);
    }

    #[test]
    fn modules_may_send_dml_and_queries_only() {
        for ok in [
            "SELECT 1",
            "insert into t values (1)",
            "WITH a AS (SELECT 1) SELECT * FROM a",
            "(SELECT 1)",
            "UPDATE t SET x = 1",
            "delete from t",
        ] {
            assert_eq!(refusal(ok), None, "{ok}");
        }
        assert_eq!(
            refusal("SET TRANSACTION READ WRITE").as_deref(),
            Some(
                "SET is refused: session settings would leak to the next user of the pooled connection"
            )
        );
        assert_eq!(
            refusal("commit").as_deref(),
            Some(
                "COMMIT is refused: transaction control is the hub's: use transaction(statements) for several statements in one transaction"
            )
        );
        for refused in [
            "BEGIN",
            "DROP TABLE x",
            "create table x (a int)",
            "LISTEN x",
            "COPY t FROM STDIN",
            "DO $$ begin end $$",
            "CALL p()",
            "DISCARD ALL",
            "RESET ALL",
            "vacuum",
            "EXPLAIN SELECT 1",
        ] {
            assert!(refusal(refused).is_some(), "{refused}");
        }
    }

    #[test]
    fn a_migration_may_not_end_its_transaction() {
        for bad in [
            "COMMIT",
            "begin",
            "END",
            "ROLLBACK",
            "PREPARE TRANSACTION 'x'",
            "start transaction",
        ] {
            assert!(ends_transaction(bad), "{bad}");
        }
        for fine in [
            "ROLLBACK TO SAVEPOINT a",
            "SAVEPOINT a",
            "CREATE TABLE x (a int)",
            "PREPARE q AS SELECT 1",
        ] {
            assert!(!ends_transaction(fine), "{fine}");
        }
    }

    #[test]
    fn the_lexer_agrees_with_postgresql_on_the_issue_12_cases() {
        // A backslash-escaped quote in an E'' string does not end it: COMMIT is a statement.
        let hidden = "INSERT INTO t VALUES (E'it\\'s'); COMMIT; CREATE TABLE x(id int);";
        let statements = split(hidden);
        assert_eq!(statements.len(), 3, "{statements:?}");
        assert!(ends_transaction(statements[1]));
        // A comment inside ROLLBACK is not a `TO`.
        assert!(ends_transaction("ROLLBACK /* back to the start */"));
        assert!(ends_transaction("ROLLBACK WORK"));
        assert!(!ends_transaction("ROLLBACK TRANSACTION TO SAVEPOINT s"));
        // A `--` comment ends at a carriage return.
        let statements = split("-- a comment\rCOMMIT; SELECT 1");
        assert_eq!(statements.len(), 2, "{statements:?}");
        assert_eq!(first_keyword(statements[0]).as_deref(), Some("COMMIT"));
        // Standard strings keep backslashes literal.
        assert_eq!(split("SELECT 'a\\'; SELECT 2").len(), 2);
        // Dollar quotes, but not parameters.
        assert_eq!(split("SELECT $1; SELECT $a$;$a$").len(), 2);
    }

    #[test]
    fn session_changing_functions_are_found_however_they_are_spelled() {
        for refused in [
            "SELECT set_config('statement_timeout', '0', false)",
            "SELECT SET_CONFIG('a', 'b', false)",
            "SELECT \"set_config\"('a', 'b', false)",
            "SELECT pg_catalog.set_config('a', 'b', false)",
            "SELECT U&\"set\\005fconfig\"('a', 'b', false)",
            "SELECT U&\"set!005fconfig\" UESCAPE '!' ('a', 'b', false)",
        ] {
            assert_eq!(
                refusal(refused).as_deref(),
                Some(
                    "set_config() is refused: settings would leak to the next user of the pooled connection"
                ),
                "{refused}"
            );
        }
        assert!(refusal("SELECT pg_try_advisory_lock(1)").is_some());
        assert_eq!(
            refusal("UPDATE pg_settings SET setting = '0' WHERE name = 'statement_timeout'")
                .as_deref(),
            Some(
                "writing pg_settings is refused: it changes the session's settings, which would leak to the next user of the pooled connection"
            )
        );
        assert_eq!(refusal("SELECT name, setting FROM pg_settings"), None);
        assert_eq!(
            refusal("SELECT 'set_config'"),
            None,
            "a string is not a call"
        );
    }

    #[test]
    fn select_into_creates_a_table_and_is_refused() {
        for refused in [
            "SELECT * INTO TEMP scratch FROM t",
            "SELECT 1 AS a INTO customers_x",
            "WITH a AS (SELECT 1) SELECT * INTO x FROM a",
        ] {
            assert_eq!(
                refusal(refused).as_deref(),
                Some(
                    "SELECT … INTO is refused: it creates a table, and tables belong in a migration; use INSERT INTO … SELECT"
                ),
                "{refused}"
            );
        }
        for fine in [
            "INSERT INTO t SELECT 1",
            "WITH a AS (SELECT 1) INSERT INTO t SELECT * FROM a",
            "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
            "SELECT x FROM t WHERE y IN (SELECT 1)",
        ] {
            assert_eq!(refusal(fine), None, "{fine}");
        }
    }

    #[test]
    fn a_migration_may_not_change_its_role() {
        for bad in [
            "SET ROLE postgres",
            "set local role x",
            "RESET ROLE",
            "SET SESSION AUTHORIZATION postgres",
            "RESET ALL",
            "SELECT set_config('role', 'postgres', true)",
            "SELECT pg_catalog.set_config('ROLE', 'postgres', false)",
            "SELECT set_config('session_authorization', 'postgres', false)",
            "SELECT set_config(E'ro\\x6ce', 'postgres', false)",
            "SELECT set_config('ro' || 'le', 'postgres', false)",
            "SELECT set_config($1, 'postgres', false)",
            r#"SELECT U&"set\005fconfig"('role', 'postgres', false)"#,
        ] {
            assert!(changes_role(bad), "{bad}");
        }
        for fine in [
            "SELECT pg_catalog.set_config('search_path', '', false)",
            "SET LOCAL search_path = public",
            "SELECT 1",
            "CREATE TABLE x (a int)",
        ] {
            assert!(!changes_role(fine), "{fine}");
        }
    }
}
