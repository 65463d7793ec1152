//! PostgreSQL's values for a search's parameters (see `store::search`),
//! for the searches still written per backend.

use tokio_postgres::types::ToSql;

use crate::store::sql::Param;

/// A search's parameters as driver values.
pub(super) fn values(params: &[Param]) -> Vec<Box<dyn ToSql + Sync + Send>> {
    params
        .iter()
        .map(|p| -> Box<dyn ToSql + Sync + Send> {
            match p {
                Param::Text(s) => Box::new(s.clone()),
                Param::Int(n) => Box::new(*n),
                Param::Flag(b) => Box::new(*b),
                Param::Texts(list) => Box::new(list.clone()),
            }
        })
        .collect()
}

/// Borrows `values` as the driver's parameter slice.
pub(super) fn refs(values: &[Box<dyn ToSql + Sync + Send>]) -> Vec<&(dyn ToSql + Sync)> {
    values
        .iter()
        .map(|v| v.as_ref() as &(dyn ToSql + Sync))
        .collect()
}
