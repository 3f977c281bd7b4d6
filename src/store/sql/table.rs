//! The session table's name: validated once, then quoted into every statement.

use crate::error::ConfigError;

/// The longest name part accepted: PostgreSQL cuts identifiers at 63 bytes,
/// and the index name adds `_expires_idx` to the table's.
const MAX_PART: usize = 48;

/// A validated table name, `table` or `schema.table`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Table {
    name: String,
    schema: Option<String>,
    table: String,
}

impl Table {
    /// Accepts ASCII letters, digits and `_` (not starting with a digit), at
    /// most [`MAX_PART`] of them, optionally after a schema name of the same
    /// form and a `.`. Anything else is refused, so no text from outside can
    /// end up as SQL.
    pub(super) fn parse(name: &str) -> Result<Self, ConfigError> {
        let (schema, table) = match name.split_once('.') {
            Some((schema, table)) => (Some(schema), table),
            None => (None, name),
        };
        if !schema.is_none_or(is_identifier) || !is_identifier(table) {
            return Err(ConfigError::InvalidTableName);
        }
        Ok(Self {
            name: name.to_owned(),
            schema: schema.map(str::to_owned),
            table: table.to_owned(),
        })
    }

    /// [`DEFAULT_TABLE_NAME`](super::DEFAULT_TABLE_NAME).
    pub(super) fn default_table() -> Self {
        Self::parse(super::DEFAULT_TABLE_NAME).expect("the default table name is valid")
    }

    /// The name as given.
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// The table, quoted (and schema-qualified) for a statement:
    /// `"schema"."table"`. Quoted, so the case given is the case used.
    pub(super) fn quoted(&self) -> String {
        match &self.schema {
            Some(schema) => format!("\"{schema}\".\"{}\"", self.table),
            None => format!("\"{}\"", self.table),
        }
    }

    /// The table without its schema, quoted.
    #[cfg(feature = "sqlite")]
    pub(super) fn quoted_unqualified(&self) -> String {
        format!("\"{}\"", self.table)
    }

    /// The schema prefix for a name in the table's schema (`"schema".`), or
    /// nothing.
    #[cfg(feature = "sqlite")]
    pub(super) fn quoted_schema_prefix(&self) -> String {
        match &self.schema {
            Some(schema) => format!("\"{schema}\"."),
            None => String::new(),
        }
    }

    /// The expiry index's name, unqualified and quoted.
    pub(super) fn quoted_index(&self) -> String {
        format!("\"{}_expires_idx\"", self.table)
    }

    /// The user index's name ([`UserIndex`](crate::store::UserIndex)),
    /// unqualified and quoted.
    pub(super) fn quoted_user_index(&self) -> String {
        format!("\"{}_user_idx\"", self.table)
    }
}

fn is_identifier(part: &str) -> bool {
    let bytes = part.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_PART
        && !bytes[0].is_ascii_digit()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_schema_qualified_names_are_accepted() {
        let t = Table::parse("sessions").unwrap();
        assert_eq!(t.quoted(), "\"sessions\"");
        assert_eq!(t.quoted_index(), "\"sessions_expires_idx\"");
        assert_eq!(t.quoted_user_index(), "\"sessions_user_idx\"");
        let t = Table::parse("app_1.Sessions_2").unwrap();
        assert_eq!(t.name(), "app_1.Sessions_2");
        assert_eq!(t.quoted(), "\"app_1\".\"Sessions_2\"");
        #[cfg(feature = "sqlite")]
        {
            assert_eq!(t.quoted_unqualified(), "\"Sessions_2\"");
            assert_eq!(t.quoted_schema_prefix(), "\"app_1\".");
        }
        assert!(Table::parse(&"a".repeat(MAX_PART)).is_ok());
    }

    #[test]
    fn anything_that_could_carry_sql_is_refused() {
        for bad in [
            "",
            ".",
            "a.",
            ".a",
            "a.b.c",
            "1abc",
            "a b",
            "a;DROP TABLE users",
            "a\"b",
            "a'b",
            "a-b",
            "a\0",
            "tablé",
            "a--",
            "a/*",
            &"a".repeat(MAX_PART + 1),
        ] {
            assert_eq!(
                Table::parse(bad),
                Err(ConfigError::InvalidTableName),
                "{bad:?} accepted"
            );
        }
    }
}
