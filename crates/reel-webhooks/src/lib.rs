//! Webhooks: every event in the outbox is delivered to each matching endpoint of its
//! application, signed per Standard Webhooks, at least once, retried on a schedule that spans
//! more than three days. Pure parts (signing, schedule, target policy) are sans-IO; the
//! [`worker`] drives them against the database and the network.

pub mod schedule;
pub mod sign;
pub mod target;
pub mod worker;
