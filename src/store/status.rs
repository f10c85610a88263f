//! Provides the one SQL mapping of the domain's `RunStatus` (a `text` column): `ToSql`,
//! `FromSql` that refuses unknown values (as crates.io's `pg_enum!` does), and the
//! expression impls that let queries compare and insert it directly.
//!
//! Lives here so `domain` stays diesel-free; nothing else in the store spells a status.

use std::io::Write;

use diesel::deserialize::{self, FromSql, Queryable};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::Text;

use crate::domain::RunStatus;

impl ToSql<Text, Pg> for RunStatus {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        out.write_all(self.as_str().as_bytes())?;
        Ok(IsNull::No)
    }
}

impl FromSql<Text, Pg> for RunStatus {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<Text, Pg>>::from_sql(bytes)?;
        Ok(text.parse()?)
    }
}

impl Queryable<Text, Pg> for RunStatus {
    type Row = RunStatus;
    fn build(row: RunStatus) -> deserialize::Result<Self> {
        Ok(row)
    }
}

/// Bound as its text, like any `&'static str`.
type TextExpression = <&'static str as AsExpression<Text>>::Expression;

impl AsExpression<Text> for RunStatus {
    type Expression = TextExpression;
    fn as_expression(self) -> TextExpression {
        <&'static str as AsExpression<Text>>::as_expression(self.as_str())
    }
}

impl AsExpression<Text> for &RunStatus {
    type Expression = TextExpression;
    fn as_expression(self) -> TextExpression {
        (*self).as_expression()
    }
}

/// `status IN ('claimed', 'running')`-style SQL for a status set, for predicates that must
/// be literal (so the planner can match a partial index).
pub fn literal_in(column: &str, set: &[RunStatus]) -> String {
    let values: Vec<String> = set.iter().map(|s| format!("'{}'", s.as_str())).collect();
    format!("{column} IN ({})", values.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_sets_read_as_sql() {
        assert_eq!(
            literal_in("status", &RunStatus::ACTIVE),
            "status IN ('claimed', 'running')"
        );
    }
}
