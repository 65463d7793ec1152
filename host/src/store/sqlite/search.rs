//! SQLite's values for a search's parameters (see `store::search`), for
//! the searches still written per backend.

use rusqlite::types::Value;

use crate::store::sql::Param;

/// A search's parameters as SQLite values (a list as JSON, for `json_each`).
pub(super) fn values(params: &[Param]) -> Vec<Value> {
    params
        .iter()
        .map(|p| match p {
            Param::Text(s) => s.clone().map_or(Value::Null, Value::Text),
            Param::Int(n) => n.map_or(Value::Null, Value::Integer),
            Param::Flag(b) => Value::Integer(i64::from(*b)),
            Param::Texts(list) => {
                Value::Text(serde_json::to_string(list).expect("strings serialize"))
            }
        })
        .collect()
}
