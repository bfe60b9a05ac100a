//! Values every replica must agree on (the generated JWT secret), stored in the
//! database: not to be confused with the service's configuration, which comes from the
//! environment.

use diesel::prelude::*;

use crate::schema::service_settings;
use crate::{is_unique_violation, DbConnection};

/// Returns the stored value of `name`, storing `candidate` first if there is none.
/// When several processes race, all of them end up with the first value written.
pub fn get_or_insert(conn: &mut DbConnection, name: &str, candidate: &str) -> QueryResult<String> {
    if let Some(v) = get(conn, name)? {
        return Ok(v);
    }
    let inserted = diesel::insert_into(service_settings::table)
        .values((
            service_settings::name.eq(name),
            service_settings::value.eq(candidate),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => {}
        Err(e) => return Err(e),
    }
    get(conn, name)?.ok_or(diesel::result::Error::NotFound)
}

pub fn get(conn: &mut DbConnection, name: &str) -> QueryResult<Option<String>> {
    service_settings::table
        .find(name)
        .select(service_settings::value)
        .first(conn)
        .optional()
}
