//! Differential-privacy aggregates: dp_count, dp_count_rows, dp_sum (float8, bigint), dp_avg and
//! dp_partition, declared in sql/schema/dp.sql over the C functions of `privacy::dp_aggregates`
//! (an `internal` state) and `privacy::dp_state_aggregates` (the fixed-size `encml.dp_state`).

pgrx::extension_sql_file!("../../sql/schema/dp.sql", name = "dp_aggregates");
