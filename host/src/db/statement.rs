//! A small SQL lexer, enough to split a script into statements and read each statement's first
//! keyword (skipping comments, string literals, quoted identifiers and dollar quotes), so the
//! gateway can refuse what modules may not send and migrations cannot end their transaction.

/// The statements of `sql`, trimmed, without their `;`, empty ones dropped.
pub fn split(sql: &str) -> Vec<&str> {
    let bytes = sql.as_bytes();
    let mut statements = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = sql[i..].find('\n').map_or(bytes.len(), |n| i + n);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = skip_block_comment(sql, i);
            }
            b'\'' | b'"' => {
                let quote = bytes[i];
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == quote {
                        if bytes.get(i + 1) == Some(&quote) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'$' => match dollar_tag(&sql[i..]) {
                Some(tag) => {
                    let body = i + tag.len();
                    i = sql[body..]
                        .find(tag)
                        .map_or(bytes.len(), |n| body + n + tag.len());
                }
                None => i += 1,
            },
            b';' => {
                push(&mut statements, &sql[start..i]);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    push(&mut statements, &sql[start..]);
    statements
}

fn push<'a>(statements: &mut Vec<&'a str>, statement: &'a str) {
    if first_keyword(statement).is_some() {
        statements.push(statement.trim());
    }
}

/// `/* … */`, nested as PostgreSQL nests them; the index after it.
fn skip_block_comment(sql: &str, start: usize) -> usize {
    let bytes = sql.as_bytes();
    let (mut depth, mut i) = (0usize, start);
    while i < bytes.len() {
        if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
        } else if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
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

/// `$tag$` or `$$` at the start of `text`.
fn dollar_tag(text: &str) -> Option<&str> {
    let rest = &text[1..];
    let end = rest.find('$')?;
    let tag = &rest[..end];
    let valid = tag
        .chars()
        .enumerate()
        .all(|(n, c)| c == '_' || c.is_ascii_alphabetic() || (n > 0 && c.is_ascii_digit()));
    valid.then(|| &text[..end + 2])
}

/// The first keyword of `statement`, upper case, after whitespace, comments and `(`.
pub fn first_keyword(statement: &str) -> Option<String> {
    let mut rest = statement;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
        if rest.starts_with("--") {
            rest = rest.find('\n').map_or("", |n| &rest[n..]);
        } else if rest.starts_with("/*") {
            rest = &rest[skip_block_comment(rest, 0)..];
        } else {
            break;
        }
    }
    let word: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphabetic() || *c == '_')
        .collect();
    (!word.is_empty()).then(|| word.to_ascii_uppercase())
}

/// Why the gateway refuses a statement from a module, or `None` when it may run.
pub fn refusal(statement: &str) -> Option<String> {
    let Some(keyword) = first_keyword(statement) else {
        return Some("the statement is empty".to_owned());
    };
    let why = match keyword.as_str() {
        "SELECT" | "INSERT" | "UPDATE" | "DELETE" | "WITH" | "VALUES" | "TABLE" | "MERGE" => {
            let lowered = statement.to_ascii_lowercase();
            if lowered.contains("set_config") {
                return Some(
                    "set_config() is refused: settings would leak to the next user of the pooled connection".to_owned(),
                );
            }
            if lowered.contains("pg_advisory_lock") || lowered.contains("pg_try_advisory_lock") {
                return Some(
                    "session advisory locks are refused: they outlive the call; use pg_advisory_xact_lock in a transaction".to_owned(),
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

/// Whether `statement` ends or starts a transaction (not allowed inside a migration).
pub fn ends_transaction(statement: &str) -> bool {
    let keyword = first_keyword(statement).unwrap_or_default();
    let lowered = statement.to_ascii_lowercase();
    match keyword.as_str() {
        "BEGIN" | "START" | "COMMIT" | "END" | "ABORT" => true,
        "ROLLBACK" => !lowered.contains(" to "),
        "PREPARE" => lowered.contains("transaction"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
